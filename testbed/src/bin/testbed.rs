//! `testbed`: bring simulated hosts up and down, and poke at them.
//!
//! Every subcommand but `up` works on the testbed recorded in `--dir` (testbed.json).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use testbed::{Fault, Os, Testbed};

#[derive(Parser)]
#[command(
    name = "testbed",
    version,
    about = "Simulated Ubuntu hosts (network namespaces, overlay filesystems, real OpenSSH) for end-to-end tests"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum User {
    Root,
    Ubuntu,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create hosts PREFIX1..PREFIXN and write DIR/hosts.json, DIR/id_ed25519, DIR/known_hosts.
    Up {
        #[arg(long, default_value_t = 1)]
        hosts: usize,
        #[arg(long)]
        dir: PathBuf,
        /// The login user written to hosts.json (ubuntu uses sudo).
        #[arg(long, value_enum, default_value = "root")]
        user: User,
        /// ubuntu's sudo asks for a password (`sudo -n` fails).
        #[arg(long)]
        sudo_password: bool,
        #[arg(long, default_value = "ubuntu-24.04", value_parser = parse_os)]
        os: Os,
        /// Multiplier for realistic durations (0 = instant): the stand-ins', and the
        /// repository's download time per package.
        #[arg(long, env = "TESTBED_TIME_SCALE", default_value_t = 0.0)]
        time_scale: f64,
        #[arg(long, default_value = "node")]
        name_prefix: String,
        /// Give one host another release: NAME=OS (repeatable), e.g. node3=debian-12.
        #[arg(long, value_parser = parse_host_os)]
        host_os: Vec<(String, Os)>,
        /// Also reach every host through a public address it does not own (DNAT, as a
        /// cloud VM) and a name NAME.tbX.test listed in DIR/etc-hosts.
        #[arg(long)]
        public_addresses: bool,
        /// The Kubernetes release whose REAL kubeadm, kubectl and control plane the
        /// hosts get (built or reused by testbed/k8s/build.sh; pkgs.k8s.io offers every
        /// release built there), the kubelet units running the kubelet stand-in against
        /// them (testbed/STANDINS-kubelet-real.md). Default: testbed::k8s::DEFAULT_RELEASE.
        #[arg(long, value_name = "RELEASE", default_missing_value = testbed::k8s::DEFAULT_RELEASE, num_args = 0..=1)]
        real_kubernetes: Option<String>,
    },
    /// Remove every host, the bridge and the testbed's files in DIR.
    Down {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Run a command inside a host as root (not through SSH); its exit status is ours.
    Exec {
        #[arg(long)]
        dir: PathBuf,
        host: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Print a host's command log.
    Audit {
        #[arg(long)]
        dir: PathBuf,
        host: String,
        /// One JSON record per line, as stored.
        #[arg(long)]
        json: bool,
    },
    /// Inject a fault that the stand-ins act on.
    Fault {
        #[arg(long)]
        dir: PathBuf,
        host: String,
        #[command(subcommand)]
        fault: FaultCmd,
    },
    /// Make the repository server misbehave for one of its names (archive.ubuntu.com,
    /// security.ubuntu.com, pkgs.k8s.io, raw.githubusercontent.com): bad-signature
    /// (InRelease no longer matches its signature), truncated (.deb downloads cut off
    /// half-way), stall (requests taken and never answered), stall-body (.deb downloads
    /// stop half-way, the connection left open). `--off` ends it.
    RepoFault {
        #[arg(long)]
        dir: PathBuf,
        #[arg(value_parser = ["bad-signature", "truncated", "stall", "stall-body"])]
        kind: String,
        name: String,
        #[arg(long)]
        off: bool,
    },
    /// Power a host off (all its processes die, its address stops answering).
    Stop {
        #[arg(long)]
        dir: PathBuf,
        host: String,
    },
    /// Boot a stopped host.
    Start {
        #[arg(long)]
        dir: PathBuf,
        host: String,
    },
    /// SIGSTOP every process of a host.
    Freeze {
        #[arg(long)]
        dir: PathBuf,
        host: String,
    },
    /// SIGCONT every process of a host.
    Thaw {
        #[arg(long)]
        dir: PathBuf,
        host: String,
    },
    /// Give a host a new SSH host key (known_hosts is not updated).
    ReplaceHostKey {
        #[arg(long)]
        dir: PathBuf,
        host: String,
    },
    /// List the hosts (name, address, state).
    Status {
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum FaultCmd {
    /// Hold the dpkg frontend lock for SECONDS (like unattended-upgrades at first boot).
    DpkgLock { seconds: f64 },
    /// apt-daily holds apt's lists lock and dpkg's frontend lock for SECONDS.
    AptDaily { seconds: f64 },
    /// A process listens on TCP PORT until cleared (kubeadm's preflight: 10250 fails
    /// join and init, 6443 init).
    PortInUse { port: u16 },
    /// Make every run of COMMAND take SECONDS longer.
    Slow { command: String, seconds: f64 },
    /// Expire every bootstrap token of the cluster whose control plane is HOST.
    ExpireTokens,
    /// Remove a fault by kind (dpkg-lock, apt-daily, port-PORT, slow-COMMAND).
    Clear { kind: String },
}

fn parse_os(s: &str) -> Result<Os, String> {
    s.parse()
}

fn parse_host_os(s: &str) -> Result<(String, Os), String> {
    let (host, os) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=OS, e.g. node3=debian-12, not {s:?}"))?;
    Ok((host.to_string(), os.parse()?))
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("testbed: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> testbed::Result<ExitCode> {
    match cli.command {
        Cmd::Up {
            hosts,
            dir,
            user,
            sudo_password,
            os,
            time_scale,
            name_prefix,
            host_os,
            public_addresses,
            real_kubernetes,
        } => {
            let start = Instant::now();
            let mut builder = Testbed::builder();
            if let Some(release) = real_kubernetes {
                builder = builder.real_kubernetes_release(&release)?;
            }
            for (host, os) in host_os {
                builder = builder.host_os(&host, os);
            }
            let tb = builder
                .hosts(hosts)
                .dir(&dir)
                .user(match user {
                    User::Root => "root",
                    User::Ubuntu => "ubuntu",
                })
                .sudo_password(sudo_password)
                .os(os)
                .time_scale(time_scale)
                .name_prefix(&name_prefix)
                .public_addresses(public_addresses)
                .build()?;
            eprintln!(
                "testbed: {hosts} host(s) up in {:.1}s; hosts: {}",
                start.elapsed().as_secs_f64(),
                tb.hosts_json().display()
            );
            tb.keep();
        }
        Cmd::Down { dir } => {
            let start = Instant::now();
            Testbed::attach(&dir)?.down()?;
            eprintln!("testbed: down in {:.1}s", start.elapsed().as_secs_f64());
        }
        Cmd::Exec { dir, host, command } => {
            let tb = Testbed::attach(&dir)?;
            let argv: Vec<&str> = command.iter().map(String::as_str).collect();
            let status = tb
                .exec_command(&host, &argv)?
                .status()
                .map_err(|e| testbed::Error::Invalid(format!("nsenter: {e}")))?;
            return Ok(exit_code(status));
        }
        Cmd::Audit { dir, host, json } => {
            let tb = Testbed::attach(&dir)?;
            for r in tb.audit(&host)? {
                if json {
                    println!("{}", serde_json::to_string(&r).expect("serializable"));
                    continue;
                }
                let what = match r.kind.as_str() {
                    "ssh" => r.argv.join(" "),
                    _ => shlex::try_join(r.argv.iter().map(String::as_str)).unwrap_or_default(),
                };
                let exit = r.exit.map(|c| format!(" exit={c}")).unwrap_or_default();
                let changed = if r.changed { " changed" } else { "" };
                println!(
                    "{:.3} {:<3} {:<6} {what}{exit}{changed}",
                    r.ts, r.kind, r.user
                );
            }
        }
        Cmd::Fault { dir, host, fault } => {
            let tb = Testbed::attach(&dir)?;
            let f = match fault {
                FaultCmd::Clear { kind } => {
                    let file = if kind.ends_with(".json") {
                        kind
                    } else {
                        format!("{kind}.json")
                    };
                    tb.clear_fault(&host, &file)?;
                    return Ok(ExitCode::SUCCESS);
                }
                FaultCmd::DpkgLock { seconds } => Fault::DpkgLock {
                    until: now() + seconds,
                },
                FaultCmd::AptDaily { seconds } => Fault::AptDaily {
                    until: now() + seconds,
                },
                FaultCmd::PortInUse { port } => Fault::PortInUse { port },
                FaultCmd::Slow { command, seconds } => Fault::Slow { command, seconds },
                FaultCmd::ExpireTokens => {
                    let n = tb.expire_bootstrap_tokens(&host)?;
                    eprintln!("testbed: expired {n} bootstrap token(s)");
                    return Ok(ExitCode::SUCCESS);
                }
            };
            tb.fault(&host, f)?;
        }
        Cmd::RepoFault {
            dir,
            kind,
            name,
            off,
        } => {
            if !testbed::repo::HOSTS.contains(&name.as_str()) {
                eprintln!(
                    "testbed: the repository server has no name {name} (it serves {})",
                    testbed::repo::HOSTS.join(", ")
                );
                return Ok(ExitCode::from(2));
            }
            Testbed::attach(&dir)?.repo_fault(&kind, &name, !off)?
        }
        Cmd::Stop { dir, host } => Testbed::attach(&dir)?.stop(&host)?,
        Cmd::Start { dir, host } => Testbed::attach(&dir)?.start(&host)?,
        Cmd::Freeze { dir, host } => Testbed::attach(&dir)?.freeze(&host)?,
        Cmd::Thaw { dir, host } => Testbed::attach(&dir)?.thaw(&host)?,
        Cmd::ReplaceHostKey { dir, host } => Testbed::attach(&dir)?.replace_host_key(&host)?,
        Cmd::Status { dir } => {
            let tb = Testbed::attach(&dir)?;
            for h in tb.hosts() {
                let state = if tb.is_running(&h.name) {
                    "running"
                } else {
                    "stopped"
                };
                println!("{}\t{}\t{state}", h.name, h.address);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => ExitCode::from(c as u8),
        (None, Some(sig)) => ExitCode::from(128 + sig as u8),
        _ => ExitCode::from(1),
    }
}
