//! The observation helper of tests/support/snapshot.rs, checked against mutations: on a
//! converged single-node cluster, each small change made by hand (a file under /etc, a
//! node label, a package hold) is reported as exactly that change, and undoing it brings
//! the snapshot back. Without this, a helper that saw nothing would let every
//! "changes nothing" test pass. On the REAL control plane (issue 9: the real kubeadm,
//! kubectl, API server and controllers, whose objects the helper reads). Needs root and
//! the built release (the first run builds it).

mod support;

use support::snapshot::Snapshot;
use support::{exec, run_on, Decl, KUBECTL};

/// `after`'s changes from `before`, the lines about dpkg's database (which records a
/// package selection such as a hold, `/var/lib/dpkg/status` and its backups) apart.
fn changes_besides_dpkg_db(after: &Snapshot, before: &Snapshot) -> (Vec<String>, Vec<String>) {
    after
        .changes(before)
        .into_iter()
        .partition(|l| !l.contains(" file /var/lib/dpkg/"))
}

#[test]
fn each_change_by_hand_is_reported_as_exactly_that_change() {
    let tb = support::real_testbed(1);
    let decls = [Decl::new("control-plane", &[("type", "mysql")], Some(&[]))];
    let inv = support::real_inventory(&tb, &decls);
    let up = run_on(&tb, &["up", "--timeout", "10m"], &inv, &[]);
    assert!(up.ok(), "up failed:\n{}", up.stderr);
    let cp = "node1";
    // The node lifecycle controller lifts its node.kubernetes.io/not-ready taint a
    // moment after the node is Ready (its monitor period): a change by itself, waited
    // for before the observations start.
    let mut taints = KUBECTL.to_vec();
    taints.extend(["get", "node", "node1", "-o", "jsonpath={.spec.taints}"]);
    support::eventually(
        "node1's node.kubernetes.io/ taints lifted",
        std::time::Duration::from_secs(60),
        || exec(&tb, cp, &taints),
        |t| !t.contains("node.kubernetes.io/"),
    );
    let base = Snapshot::of(&tb, cp);
    for kind in [
        "file /etc/",
        "unit kubelet.service",
        "package kubelet",
        "hold kubelet",
    ] {
        assert!(
            base.keys().any(|k| k.starts_with(&format!("node1 {kind}"))),
            "no `{kind}` observed on node1"
        );
    }
    assert!(
        base.keys().any(|k| k == "cluster v1 Node /node1"),
        "the node object is not observed"
    );
    assert_eq!(Snapshot::of(&tb, cp).changes(&base), Vec::<String>::new());

    // A file under /etc.
    exec(
        &tb,
        "node1",
        &[
            "sh",
            "-c",
            "printf 'x\\n' > /etc/mutation && chmod 640 /etc/mutation",
        ],
    );
    assert_eq!(
        Snapshot::of(&tb, cp).changes(&base),
        [format!(
            "+ node1 file /etc/mutation: file 0640 0:0 sha256:{}",
            sha256_hex(b"x\n")
        )]
    );
    exec(&tb, "node1", &["rm", "/etc/mutation"]);
    assert_eq!(Snapshot::of(&tb, cp).changes(&base), Vec::<String>::new());

    // A node label. A real API server also records who set it (managedFields).
    let mut label = KUBECTL.to_vec();
    label.extend(["label", "node", "node1", "type=other", "--overwrite"]);
    exec(&tb, "node1", &label);
    let (changes, managers): (Vec<String>, Vec<String>) = Snapshot::of(&tb, cp)
        .changes(&base)
        .into_iter()
        .partition(|l| !l.contains(".metadata.managedFields"));
    assert_eq!(
        changes,
        ["~ cluster v1 Node /node1.metadata.labels.type: \"mysql\" -> \"other\""]
    );
    assert!(
        managers
            .iter()
            .all(|l| l.starts_with("~ cluster v1 Node /node1.metadata.managedFields")),
        "{managers:#?}"
    );

    // A package hold: the hold, and dpkg's database that records it.
    let base = Snapshot::of(&tb, cp);
    exec(&tb, "node1", &["apt-mark", "hold", "containerd"]);
    let (changes, db) = changes_besides_dpkg_db(&Snapshot::of(&tb, cp), &base);
    assert_eq!(
        changes,
        ["+ node1 hold containerd: held"],
        "besides {db:#?}"
    );
    exec(&tb, "node1", &["apt-mark", "unhold", "containerd"]);
    let (changes, _) = changes_besides_dpkg_db(&Snapshot::of(&tb, cp), &base);
    assert_eq!(changes, Vec::<String>::new());
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
