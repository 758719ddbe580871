//! Reaching hosts the way operators do (issue 13), end to end on the testbed's real
//! OpenSSH: `hostKeyPolicy: accept-new` on fresh hosts, and `--wait-for-ssh` for a host
//! that is still booting. The testbeds are on the REAL control plane (issue 9,
//! tests/up_real.rs): the clusters converged behind a bastion are real kubeadm clusters.
//!
//! Needs root and the built release (the first run builds it), like tests/up_real.rs.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::*;
use testbed::{HostEntry, Testbed};

/// `plan` on `inv` with `extra` options, its run logs in the testbed's directory.
fn plan(tb: &Testbed, inv: &Path, extra: &[&str]) -> Ran {
    bootstrap(tb, "plan", inv, extra)
}

/// `up`, for the runs that stop at the connect phase: `plan` exits 1 on any error, `up`
/// tells an unreachable host (4) from the rest.
fn up(tb: &Testbed, inv: &Path, extra: &[&str]) -> Ran {
    bootstrap(tb, "up", inv, extra)
}

fn bootstrap(tb: &Testbed, command: &str, inv: &Path, extra: &[&str]) -> Ran {
    bootstrap_env(tb, command, inv, extra, &[])
}

fn bootstrap_env(tb: &Testbed, command: &str, inv: &Path, extra: &[&str], env: Env) -> Ran {
    let runs = tb.dir().join("runs");
    let mut args = vec![
        command,
        inv.to_str().unwrap(),
        "--log-dir",
        runs.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run_bootstrap(&args, env)
}

/// The testbed's inventory with its `ssh:` defaults extended by `lines` (YAML, indented
/// two spaces) and `knownHostsFile` pointing at `known_hosts`, written as `name`.
fn inventory_ssh(tb: &Testbed, name: &str, known_hosts: &Path, lines: &str) -> PathBuf {
    let text = std::fs::read_to_string(real_inventory(tb, &plain_decls(1))).unwrap();
    let path = tb.dir().join(name);
    let pinned = json(&tb.known_hosts().display().to_string());
    assert!(text.contains(&pinned), "{text}");
    let text = text.replace(
        &format!("  knownHostsFile: {pinned}\n"),
        &format!(
            "  knownHostsFile: {}\n{lines}",
            json(&known_hosts.display().to_string())
        ),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// Fresh hosts nobody recorded: accept-new records each key once (the very lines the
/// testbed pinned, printed with their fingerprints), the next run under strict trusts
/// them, and a key that then changes is refused under both policies, the file untouched.
#[test]
fn accept_new_records_fresh_hosts_then_strict_trusts_them_and_a_changed_key_is_refused() {
    let tb = real_testbed(2);
    let kh = tb.dir().join("fresh/known_hosts");
    std::fs::create_dir(tb.dir().join("fresh")).unwrap();
    let accept = inventory_ssh(&tb, "accept.yaml", &kh, "  hostKeyPolicy: accept-new\n");

    let ran = plan(&tb, &accept, &[]);
    assert_eq!(ran.code, Some(2), "changes pending on fresh hosts");
    assert_eq!(ran.stderr.matches("permanently added").count(), 2);
    let recorded = std::fs::read_to_string(&kh).unwrap();
    let pinned = std::fs::read_to_string(tb.known_hosts()).unwrap();
    assert_eq!(sorted_lines(&recorded), sorted_lines(&pinned));

    let ran = plan(&tb, &accept, &[]);
    assert_eq!(ran.code, Some(2));
    assert!(!ran.stderr.contains("permanently added"), "{}", ran.stderr);

    let strict = inventory_ssh(&tb, "strict.yaml", &kh, "  hostKeyPolicy: strict\n");
    let ran = plan(&tb, &strict, &[]);
    assert_eq!(ran.code, Some(2), "{}", ran.stderr);

    tb.replace_host_key("node2").unwrap();
    for inv in [&strict, &accept] {
        let ran = up(&tb, inv, &[]);
        assert_eq!(ran.code, Some(4), "{}", ran.stderr);
        assert!(ran.stderr.contains("HAS CHANGED"), "{}", ran.stderr);
    }
    assert_eq!(std::fs::read_to_string(&kh).unwrap(), recorded);
}

/// A host powered off whose sshd comes up 20 s later (issue 13's case): without
/// --wait-for-ssh the run stops at once (exit 4, nothing waited for); under
/// `--wait-for-ssh 1m` the host is tried again, named while awaited, and the run goes on.
#[test]
fn a_booting_host_is_waited_for_under_wait_for_ssh() {
    let tb = real_testbed(2);
    let inv = real_inventory(&tb, &plain_decls(1));
    tb.stop("node2").unwrap();

    let ran = up(&tb, &inv, &["--connect-timeout", "2s"]);
    assert_eq!(ran.code, Some(4), "{}", ran.stderr);
    assert!(ran.stderr.contains("cannot connect"), "{}", ran.stderr);
    assert!(!ran.stderr.contains("waiting for SSH"), "{}", ran.stderr);

    let started = std::time::Instant::now();
    let ran = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_secs(20));
            tb.start("node2").unwrap();
        });
        plan(
            &tb,
            &inv,
            &["--connect-timeout", "2s", "--wait-for-ssh", "1m"],
        )
    });
    assert_eq!(ran.code, Some(2), "{}", ran.stderr);
    assert!(started.elapsed() >= Duration::from_secs(20));
    assert!(
        ran.stderr.contains("waiting for SSH on 1 host (node2)"),
        "{}",
        ran.stderr
    );
}

/// A host that never comes back is exit 4 with its last error, once the wait is over.
#[test]
fn a_host_that_never_answers_is_exit_4_after_the_wait() {
    let tb = real_testbed(2);
    let inv = real_inventory(&tb, &plain_decls(1));
    tb.stop("node2").unwrap();
    let ran = up(
        &tb,
        &inv,
        &["--connect-timeout", "1s", "--wait-for-ssh", "4s"],
    );
    assert_eq!(ran.code, Some(4), "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("still not accepting SSH after waiting 4s (--wait-for-ssh)"),
        "{}",
        ran.stderr
    );
}

/// The testbed with an SSH certificate authority (`Builder::certificates`): hosts known
/// only through one `@cert-authority` line, logged into by user certificate alone (the
/// plain key removed from authorized_keys); each real sshd logs the certificate login.
#[test]
fn hosts_of_a_certificate_authority_are_reached_by_certificates_alone() {
    let tb = real_builder(2).certificates(true).build().expect("testbed");
    for h in tb.hosts() {
        let out = tb
            .exec(&h.name, &["rm", "/root/.ssh/authorized_keys"])
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    let ca_only = tb.dir().join("known_hosts_ca");
    let inv = inventory_ssh(&tb, "ca.yaml", &ca_only, "");
    let ran = plan(&tb, &inv, &[]);
    assert_eq!(ran.code, Some(2), "{}", ran.stderr);
    for h in tb.hosts() {
        let log = tb.console_log(&h.name).unwrap();
        assert!(
            log.lines()
                .any(|l| l.contains("Accepted publickey for root") && l.contains("ED25519-CERT")),
            "{log}"
        );
    }
}

/// Where a test writes the bastion.
#[derive(PartialEq)]
enum JumpIn {
    /// `ssh.proxyJump` in the inventory.
    Inventory,
    /// Only `~/.ssh/config` (HOME pointed at the testbed), which bootstrap reads by
    /// default as ssh does.
    SshConfig,
}

/// One 3-host cluster behind a bastion, converged through it by the ssh_config variant and
/// then reached again by the inventory's `proxyJump`. Each was a test of its own with a
/// 4-host testbed and a 3-host cluster of its own (CI's time is mostly spent building
/// clusters); what they check is the bastion's use (its logins, the origin of the
/// setting, unreachability without it), which holds on a converged cluster as on a fresh
/// one. The ssh_config variant comes first: its `plan -v` reads the origins on fresh hosts;
/// the inventory variant last: it stops the bastion. Between them ~/.ssh/config is removed,
/// or the inventory variant would pass on ssh_config's ProxyJump alone. Each check names
/// itself on stderr so a failure says which one it was.
#[test]
fn three_hosts_behind_a_bastion() {
    let tb = real_testbed(4);
    let bastion = tb.hosts()[3].clone();
    for h in ["node1", "node2", "node3"] {
        tb.behind_bastion(h).unwrap();
    }
    check!(a_bastion_written_only_in_ssh_config_is_used_like_proxy_jump(&tb, &bastion));
    // Next the inventory's own bastion setting: the ssh_config that named it goes.
    std::fs::remove_file(tb.dir().join("home/.ssh/config")).unwrap();
    check!(hosts_behind_a_bastion_are_reached_through_one_bastion_connection(&tb, &bastion));
}

/// ProxyJump on the testbed: three hosts in a private network (they do not answer this
/// machine) converge through a fourth host as the bastion, the plan made over one
/// bastion connection for the whole run (its sshd logs one login).
fn hosts_behind_a_bastion_are_reached_through_one_bastion_connection(
    tb: &Testbed,
    bastion: &HostEntry,
) {
    converge_behind_a_bastion(tb, bastion, JumpIn::Inventory);
}

/// The same with the bastion written only in ssh_config (`Host` patterns, `ProxyJump`),
/// as operators keep it; `plan -v` says the setting came from that file and line.
fn a_bastion_written_only_in_ssh_config_is_used_like_proxy_jump(tb: &Testbed, bastion: &HostEntry) {
    converge_behind_a_bastion(tb, bastion, JumpIn::SshConfig);
}

/// `tb`'s node1..node3 are behind `bastion` ([`Testbed::behind_bastion`]).
fn converge_behind_a_bastion(tb: &Testbed, bastion: &HostEntry, jump_in: JumpIn) {
    let direct = real_inventory(tb, &plain_decls(2));
    let ran = up(tb, &direct, &["--connect-timeout", "2s"]);
    assert_eq!(ran.code, Some(4), "not reachable directly: {}", ran.stderr);

    let home = tb.dir().join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    let home_env = home.to_str().unwrap().to_string();
    let env: &[(&str, Option<&str>)] = &[("HOME", Some(&home_env))];
    let jumped = match jump_in {
        JumpIn::Inventory => {
            // Only the inventory names the bastion: no ssh_config (left by a check run
            // before on this testbed) that would reach the hosts without it.
            let config = home.join(".ssh/config");
            assert!(
                !config.exists(),
                "{} would name the bastion",
                config.display()
            );
            let text = std::fs::read_to_string(&direct).unwrap();
            let jumped = tb.dir().join("jumped.yaml");
            std::fs::write(
                &jumped,
                text.replace(
                    "ssh:\n",
                    &format!("ssh:\n  proxyJump: root@{}\n", bastion.address),
                ),
            )
            .unwrap();
            jumped
        }
        JumpIn::SshConfig => {
            let private: Vec<String> = tb.hosts()[..3].iter().map(|h| h.address.clone()).collect();
            std::fs::write(
                home.join(".ssh/config"),
                format!(
                    "# the private network, through the bastion\n\
                     Host {}\n  ProxyJump root@{}\n\
                     Host *\n  ConnectTimeout 20\n",
                    private.join(" "),
                    bastion.address
                ),
            )
            .unwrap();
            let verbose = bootstrap_env(tb, "plan", &direct, &["-v"], env);
            let origin = format!(
                "ssh proxyJump root@{} (ssh_config {}:3)",
                bastion.address,
                home.join(".ssh/config").display()
            );
            assert_eq!(
                verbose.stderr.matches(&origin).count(),
                3,
                "{}",
                verbose.stderr
            );
            assert!(
                verbose.stderr.contains(&format!(
                    "ssh connectTimeout 20s (ssh_config {}:5)",
                    home.join(".ssh/config").display()
                )),
                "{}",
                verbose.stderr
            );
            direct.clone()
        }
    };
    let logins = || {
        tb.console_log(&bastion.name)
            .unwrap()
            .matches("Accepted publickey")
            .count()
    };
    let before = logins();
    let ran = bootstrap_env(tb, "up", &jumped, &[], env);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert_eq!(logins() - before, 1, "one bastion connection for the run");
    let again = bootstrap_env(tb, "plan", &jumped, &[], env);
    assert_eq!(again.code, Some(0), "converged: {}", again.stderr);
    assert_eq!(logins() - before, 2);
    if jump_in == JumpIn::SshConfig {
        // `ssh.config: false`: the file is ignored, the hosts are out of reach again.
        let ignoring = tb.dir().join("ignoring.yaml");
        let text = std::fs::read_to_string(&direct).unwrap();
        std::fs::write(&ignoring, text.replace("ssh:\n", "ssh:\n  config: false\n")).unwrap();
        let ran = bootstrap_env(tb, "up", &ignoring, &["--connect-timeout", "2s"], env);
        assert_eq!(ran.code, Some(4), "{}", ran.stderr);
        return;
    }

    // The bastion down: every host fails as unreachable via it.
    tb.stop(&bastion.name).unwrap();
    let ran = up(tb, &jumped, &["--connect-timeout", "2s"]);
    assert_eq!(ran.code, Some(4), "{}", ran.stderr);
    let via = format!("via bastion root@{}: cannot connect", bastion.address);
    assert_eq!(ran.stderr.matches(&via).count(), 3, "{}", ran.stderr);
}
