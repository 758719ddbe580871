//! The kubeadm configuration `bootstrap` writes (templates/kubeadm-init.yaml.j2, rendered
//! for an inventory) judged by the REAL kubeadm of a release: `kubeadm config validate`
//! runs kubeadm's own defaulting and validation (the same as `kubeadm init --config`
//! does before touching the host), so a field kubeadm does not know, a value it refuses or
//! an API version it dropped fails here rather than on a customer's first control plane.
//!
//! kubeadm is built from source by the testbed (`testbed::real_release`; the first run
//! builds it, see testbed/k8s/README.md). `cargo test --test kubeadm_real`.

mod support;

use std::path::Path;
use std::process::Output;

use bootstrap::inventory::{self, Inventory};
use bootstrap::plan::Vars;
use bootstrap::playbook;
use testbed::k8s::DEFAULT_RELEASE;

/// The configuration `bootstrap up` writes to /etc/kubeadm/kubeadm.yaml on the first
/// control plane of `inv`, with the cluster at the built release.
fn rendered(inv: &Inventory) -> String {
    let mut vars = Vars::new(inv, inv.first_control_plane(), None);
    vars.cluster = vars.cluster.at(DEFAULT_RELEASE.trim_start_matches('v'));
    playbook::render_template("kubeadm-init.yaml.j2", &vars).unwrap()
}

/// `kubeadm config validate --config FILE` of the built release on `config`.
fn kubeadm_validate(config: &str) -> Output {
    support::real_kubeadm_validate(DEFAULT_RELEASE, config)
}

fn load(path: &str) -> Inventory {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    inventory::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Fails unless the real kubeadm's `config validate` accepts `config`.
fn assert_valid(config: &str) {
    let out = kubeadm_validate(config);
    assert!(
        out.status.success(),
        "{}{}\n--- config:\n{config}",
        text_of(&out.stdout),
        text_of(&out.stderr)
    );
}

fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn real_kubeadm_accepts_the_configuration_of_each_example_inventory() {
    for path in ["inventory.example", "examples/wordpress/inventory.yaml"] {
        let config = rendered(&load(path));
        let out = kubeadm_validate(&config);
        assert!(
            out.status.success(),
            "{path}: real kubeadm {DEFAULT_RELEASE} refused the rendered configuration: {}\n{}{}\n--- config:\n{config}",
            out.status,
            text_of(&out.stdout),
            text_of(&out.stderr)
        );
        assert!(
            text_of(&out.stdout).contains("ok"),
            "{path}: {}",
            text_of(&out.stdout)
        );
    }
}

/// A control plane with the default taint and a worker's taints and labels exercise the
/// template's other branches (taints listed, values, effects).
#[test]
fn real_kubeadm_accepts_taints_and_an_explicit_endpoint() {
    let mut inv = load("inventory.example");
    inv.hosts[0].taints = inventory::default_taints(inventory::Role::ControlPlane);
    inv.hosts[0].taints.push(inventory::Taint {
        key: "example.com/dedicated".into(),
        value: Some("db".into()),
        effect: "NoExecute".into(),
    });
    inv.cluster.control_plane_endpoint = Some("10.0.0.10:6443".into());
    let config = rendered(&inv);
    assert_valid(&config);
}

/// The JoinConfiguration `bootstrap up` gives `kubeadm join` on stdin, for a worker without
/// and with taints (one with a value), passes the real kubeadm's validation.
#[test]
fn real_kubeadm_accepts_the_join_configuration() {
    let mut inv = load("inventory.example");
    let w = inv
        .hosts
        .iter()
        .position(|h| h.role == inventory::Role::Worker)
        .unwrap();
    for taints in [
        vec![],
        vec![
            inventory::Taint {
                key: "example.com/dedicated".into(),
                value: Some("gpu".into()),
                effect: "NoSchedule".into(),
            },
            inventory::Taint {
                key: "spot".into(),
                value: None,
                effect: "NoExecute".into(),
            },
        ],
    ] {
        inv.hosts[w].taints = taints;
        let mut vars = Vars::new(&inv, &inv.hosts[w], None);
        vars.cluster = vars.cluster.at(DEFAULT_RELEASE.trim_start_matches('v'));
        let vars = vars.with(
            "join",
            serde_json::json!({
                "endpoint": "10.0.0.10:6443",
                "token": "abcdef.0123456789abcdef",
                "ca_cert_hash": format!("sha256:{}", "0123456789abcdef".repeat(4)),
            }),
        );
        let config = playbook::render_template("kubeadm-join.yaml.j2", &vars).unwrap();
        assert_valid(&config);
    }
}

/// kubeadm gives each node a /24 of the pod network (IPv4 node-cidr-mask-size default,
/// kadm/apis/kubeadm/validation ValidatePodSubnetNodeMask): a /25 cannot hold one node's
/// range, and kubeadm says so. `bootstrap validate` must refuse such an inventory first.
#[test]
fn real_kubeadm_refuses_a_pod_subnet_smaller_than_a_nodes_range() {
    let mut inv = load("inventory.example");
    inv.cluster.pod_subnet = "10.244.0.0/25".into();
    let config = rendered(&inv);
    assert!(config.contains("podSubnet: \"10.244.0.0/25\""), "{config}");
    let out = kubeadm_validate(&config);
    let stderr = text_of(&out.stderr);
    assert!(
        !out.status.success(),
        "real kubeadm accepted podSubnet 10.244.0.0/25: {}",
        text_of(&out.stdout)
    );
    assert!(
        stderr.contains(
            "networking.podSubnet: Invalid value: \"10.244.0.0/25\": the size of pod subnet with mask 25 is smaller than the size of node subnet with mask 24"
        ),
        "{stderr}"
    );
}

/// The reasons in kubeadm's validation error, e.g. `[networking.serviceSubnet: Invalid
/// value: "10.96.0.0/29": subnet with 8 address(es) is too small, the minimum is 10,
/// networking.podSubnet: ...]` -> `subnet with 8 ... is 10`, ...
fn kubeadm_reasons(stderr: &str) -> Vec<&str> {
    let error = stderr
        .lines()
        .find(|l| l.contains("Invalid value: "))
        .unwrap_or("");
    let error = error.trim_end().trim_end_matches(']');
    error
        .split("Invalid value: ")
        .skip(1)
        .map(|e| {
            let reason = e.split_once("\": ").map_or(e, |(_, r)| r);
            reason.split(", networking.").next().unwrap_or(reason)
        })
        .collect()
}

/// `bootstrap validate` and the real kubeadm agree on which pod and service subnets a
/// cluster may have (kubeadm's ValidatePodSubnetNodeMask and ValidateServiceSubnetSize),
/// so an inventory `bootstrap` accepts is never refused by `kubeadm init` on the first
/// control plane, and one it refuses would be refused there too. Where kubeadm refuses,
/// `bootstrap` names the same field and gives kubeadm's reason in its words.
#[test]
fn bootstrap_validate_and_real_kubeadm_agree_on_subnet_sizes() {
    // Neither subnet overlaps the other or the host, so only the sizes decide.
    let cases = [
        ("10.244.0.0/25", "10.96.0.0/12"),
        ("192.168.0.0/24", "10.96.0.0/12"),
        ("10.0.0.0/8", "172.20.0.0/16"),
        ("8.0.0.0/6", "172.20.0.0/16"),
        ("192.168.0.0/16", "10.0.0.0/8"),
        ("192.168.0.0/16", "10.96.0.0/12"),
        ("192.168.0.0/16", "10.96.0.0/28"),
        ("192.168.0.0/16", "10.96.0.0/29"),
    ];
    let base = load("inventory.example");
    for (pod, service) in cases {
        let text = format!(
            "cluster:\n  kubernetesVersion: {}\n  podSubnet: {pod}\n  serviceSubnet: {service}\n\
             hosts:\n  - {{name: master, address: 172.31.0.10, role: control-plane}}\n",
            DEFAULT_RELEASE.trim_start_matches('v')
        );
        let ours = inventory::parse(Path::new("subnets.yaml"), text.clone());
        let mut inv = base.clone();
        inv.cluster.pod_subnet = pod.into();
        inv.cluster.service_subnet = service.into();
        let out = kubeadm_validate(&rendered(&inv));
        let theirs = text_of(&out.stderr);
        match (&ours, out.status.success()) {
            (Ok(_), true) => {}
            (Err(e), false) => {
                let fields: Vec<&str> = e.problems().iter().map(|p| p.field.as_str()).collect();
                let field = if theirs.contains("networking.podSubnet") {
                    "cluster.podSubnet"
                } else {
                    "cluster.serviceSubnet"
                };
                assert_eq!(
                    fields,
                    [field],
                    "{pod} {service}: kubeadm said {theirs}\nbootstrap: {e:?}"
                );
                // And in kubeadm's words, since bootstrap's message says "(kubeadm)".
                let message = &e.problems()[0].message;
                for reason in kubeadm_reasons(&theirs) {
                    assert!(
                        message.contains(reason),
                        "{pod} {service}: kubeadm said `{reason}`, bootstrap `{message}`"
                    );
                }
            }
            (Ok(_), false) => panic!(
                "{pod} {service}: bootstrap accepts what real kubeadm refuses: {theirs}\n{text}"
            ),
            (Err(e), true) => panic!(
                "{pod} {service}: bootstrap refuses what real kubeadm accepts: {:?}",
                e.problems().iter().map(|p| &p.message).collect::<Vec<_>>()
            ),
        }
    }
}
