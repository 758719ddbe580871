//! [`Testbed`]: a set of simulated hosts, created by [`Builder`], torn down on drop.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::distro::Os;
use crate::error::{Error, Result};
use crate::host::{self, SIM_COPY};
use crate::keys;
use crate::layout::{self, AuditRecord, Fault, HostPaths, Provision};
use crate::net;
use crate::procs;
use crate::registries;
use crate::registry;
use crate::repo;
use crate::state::{self, HostEntry, HostState, TestbedState};

/// How many hosts are brought up (and torn down) at once, unless `TESTBED_PARALLEL` says
/// otherwise. Booting is mostly waiting for `ip`, `ssh-keygen` and sshd, so this is more
/// than the core count.
const PARALLEL: usize = 16;

fn parallel() -> usize {
    std::env::var("TESTBED_PARALLEL")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(PARALLEL)
}

/// Options for a new testbed. `Testbed::builder().hosts(3).build()?`.
#[derive(Debug, Clone)]
pub struct Builder {
    hosts: usize,
    user: String,
    os: Os,
    sudo_password: bool,
    time_scale: f64,
    name_prefix: String,
    dir: Option<PathBuf>,
    host_os: HashMap<String, Os>,
    host_resources: HashMap<String, layout::Resources>,
    real_kubernetes: Option<PathBuf>,
    public_addresses: bool,
    certificates: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            hosts: 1,
            user: "root".into(),
            os: Os::default(),
            sudo_password: false,
            time_scale: std::env::var("TESTBED_TIME_SCALE")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0.0),
            name_prefix: "node".into(),
            dir: None,
            host_os: HashMap::new(),
            host_resources: HashMap::new(),
            real_kubernetes: None,
            public_addresses: false,
            certificates: false,
        }
    }
}

impl Builder {
    pub fn hosts(mut self, n: usize) -> Self {
        self.hosts = n;
        self
    }
    /// The login user written to hosts.json: "root" (default) or "ubuntu".
    pub fn user(mut self, user: &str) -> Self {
        self.user = user.to_string();
        self
    }
    pub fn os(mut self, os: Os) -> Self {
        self.os = os;
        self
    }
    /// One host simulates another release than the rest (e.g. a Debian host in an Ubuntu
    /// cluster, which the tool must refuse).
    pub fn host_os(mut self, host: &str, os: Os) -> Self {
        self.host_os.insert(host.to_string(), os);
        self
    }
    /// One host is a smaller machine: `cpus` CPUs (its processes' affinity) and
    /// `memory_mib` MiB of MemTotal in its /proc/meminfo (None: the machine's).
    pub fn host_resources(
        mut self,
        host: &str,
        cpus: Option<usize>,
        memory_mib: Option<u64>,
    ) -> Self {
        self.host_resources
            .insert(host.to_string(), layout::Resources { cpus, memory_mib });
        self
    }
    /// Make ubuntu's sudo ask for a password ("ubuntu"), so `sudo -n` fails.
    pub fn sudo_password(mut self, yes: bool) -> Self {
        self.sudo_password = yes;
        self
    }
    /// Multiplier for stand-ins' realistic durations (default: env TESTBED_TIME_SCALE or 0).
    pub fn time_scale(mut self, f: f64) -> Self {
        self.time_scale = f;
        self
    }
    /// The `kubelet` unit of every host runs the kubelet stand-in for the REAL control
    /// plane (testbed/STANDINS-kubelet-real.md) with the programs of the installed kubelet
    /// package's release taken from `releases` (the parent of
    /// [`crate::k8s::RealRelease::dir`]; it must be under /var or /usr, which the hosts
    /// see), and pkgs.k8s.io offers exactly the releases built there. Default: the
    /// directory of [`crate::k8s::DEFAULT_RELEASE`], built on first use. Every host's real
    /// containerd also starts with the images the releases' kubeadm lists (as an offline
    /// site's machine image would; the testbed's registry.k8s.io holds them too, see
    /// [`crate::registries`]).
    pub fn real_kubernetes(mut self, releases: impl Into<PathBuf>) -> Self {
        self.real_kubernetes = Some(releases.into());
        self
    }
    /// [`Builder::real_kubernetes`] with the programs of `release` (e.g. "v1.35.4"), built
    /// or reused by testbed/k8s/build.sh ([`crate::k8s::real_release_for_hosts`]: fails
    /// when the hosts cannot see the cache).
    pub fn real_kubernetes_release(self, release: &str) -> Result<Self> {
        let k8s = crate::k8s::real_release_for_hosts(release)?;
        let releases = k8s.dir().parent().unwrap_or(k8s.dir()).to_path_buf();
        Ok(self.real_kubernetes(releases))
    }
    /// Hosts are named PREFIX1..PREFIXN (default "node").
    pub fn name_prefix(mut self, p: &str) -> Self {
        self.name_prefix = p.to_string();
        self
    }
    /// Where the testbed keeps its files. Default: a new /tmp/testbed-XXXXXXXX, removed
    /// on drop. A given directory is kept (only its testbed files are removed).
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Give every host a public address it does not own (10.201.X.(10+i), translated by
    /// DNAT in the root namespace, as a cloud VM's public IP) and a DNS name
    /// `NAME.tbX.test` resolving to it in `DIR/etc-hosts`. Needs `nft` (nftables).
    pub fn public_addresses(mut self, yes: bool) -> Self {
        self.public_addresses = yes;
        self
    }

    /// An SSH certificate authority for the fleet ([`Testbed::use_certificates`]): every
    /// host presents a host certificate and accepts user certificates of the CA.
    pub fn certificates(mut self, yes: bool) -> Self {
        self.certificates = yes;
        self
    }

    pub fn build(mut self) -> Result<Testbed> {
        preflight()?;
        if self.real_kubernetes.is_none() {
            self = self.real_kubernetes_release(crate::k8s::DEFAULT_RELEASE)?;
        }
        if self.public_addresses && !Path::new("/usr/sbin/nft").exists() {
            return Err(Error::Invalid(
                "/usr/sbin/nft not found: public addresses are translated by nftables (apt-get install nftables)".into(),
            ));
        }
        if self.hosts == 0 || self.hosts > net::MAX_HOSTS {
            return Err(Error::Invalid(format!(
                "--hosts must be between 1 and {} (one /24 per testbed), not {}",
                net::MAX_HOSTS,
                self.hosts
            )));
        }
        if self.user != "root" && self.user != "ubuntu" {
            return Err(Error::Invalid(format!(
                "user must be root or ubuntu, not {:?}",
                self.user
            )));
        }
        // Built (or found) before anything exists that a failure would leave behind.
        let cri_client = match self.real_kubernetes {
            Some(_) => Some(crate::containerd::cri_client()?),
            None => None,
        };
        let p = &self.name_prefix;
        if p.is_empty()
            || p.len() > 40
            || !p.starts_with(|c: char| c.is_ascii_lowercase())
            || !p
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(Error::Invalid(format!(
                "name prefix {p:?} must be a lowercase host name start ([a-z][a-z0-9-]*, at most 40 chars)"
            )));
        }
        let (dir, owned_dir) = match &self.dir {
            Some(d) => (d.clone(), false),
            None => (
                std::env::temp_dir().join(format!("testbed-{:08x}", rand::random::<u32>())),
                true,
            ),
        };
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
        let dir = dir
            .canonicalize()
            .map_err(|e| Error::io("resolve", &dir, e))?;
        for t in layout::OVERLAY_DIRS {
            if !host::FRESH_DIRS.contains(t) && dir.starts_with(t) {
                return Err(Error::Invalid(format!(
                    "the testbed directory {} is inside {t}, which every host overlays: choose a directory elsewhere (e.g. /tmp/NAME)",
                    dir.display()
                )));
            }
        }
        if dir.join(state::STATE_FILE).exists() {
            return Err(Error::Invalid(format!(
                "{} already holds a testbed: remove it first with `testbed down --dir {}`",
                dir.display(),
                dir.display()
            )));
        }

        let sim = crate::sim_binary()?;
        // One copy per testbed (hard-linked into every host): a rebuild of tb-sim while the
        // testbed runs cannot change or break the hosts' binary.
        let copy = dir.join(SIM_COPY);
        let _ = std::fs::remove_file(&copy);
        std::fs::copy(&sim, &copy).map_err(|e| Error::io("copy tb-sim to", &copy, e))?;
        host::prepare_lowers(&dir)?;
        let client_pub = keys::generate(&dir.join(state::CLIENT_KEY), "testbed")?;

        registry::reap_orphans();
        let names: Vec<String> = (1..=self.hosts)
            .map(|i| format!("{}{i}", self.name_prefix))
            .collect();
        if let Some(unknown) = self.host_os.keys().find(|k| !names.contains(k)) {
            return Err(Error::Invalid(format!(
                "host_os names {unknown:?}, which is not one of the hosts ({}1..{}{})",
                self.name_prefix, self.name_prefix, self.hosts
            )));
        }
        let subnet = net::create_bridge()?;
        registry::register(&registry::Entry {
            subnet,
            dir: dir.clone(),
            owner: Some(registry::Owner::me()),
            owned_dir,
        });
        let hosts = (1..=self.hosts)
            .map(|i| {
                let name = format!("{}{i}", self.name_prefix);
                HostState {
                    address: net::host_address(subnet, i),
                    netns: net::netns_name(subnet, &name),
                    veth: net::veth_name(subnet, i),
                    index: i,
                    os: self.host_os.get(&name).copied(),
                    resources: self.host_resources.get(&name).copied(),
                    name,
                    init_pid: None,
                }
            })
            .collect();
        let st = TestbedState {
            subnet,
            bridge: net::bridge_name(subnet),
            user: self.user.clone(),
            os: self.os,
            sudo_password: self.sudo_password,
            time_scale: self.time_scale,
            hosts,
            real_kubernetes: self.real_kubernetes.clone(),
            cri_client,
            repo_pid: None,
            repo_cache: None,
            registry_pids: Vec::new(),
            public_addresses: self.public_addresses,
        };
        st.save(&dir)?;
        // From here on, dropping `tb` (also on error) tears down whatever exists.
        let tb = Testbed {
            dir,
            state: Mutex::new(st),
            teardown_on_drop: true,
            owned_dir,
        };
        let release_images = match &self.real_kubernetes {
            Some(releases) => crate::containerd::release_images(releases)?,
            None => Vec::new(),
        };
        {
            let cache = repo::cache(&sim, self.real_kubernetes.as_deref())?;
            let pid = repo::start(
                &copy,
                &cache,
                &tb.dir,
                &net::gateway(subnet),
                self.time_scale,
            )?;
            let mut st = tb.state();
            st.repo_pid = Some(pid);
            st.repo_cache = Some(cache.clone());
            st.save(&tb.dir)?;
            drop(st);
            let t = Instant::now();
            let images = registries::cache(&registries::catalog(&release_images))?;
            let t_cache = t.elapsed();
            let pids = registries::start(
                &images,
                &cache.join("keys"),
                &tb.dir,
                subnet,
                &net::bridge_name(subnet),
            )?;
            if std::env::var_os("TESTBED_TRACE").is_some() {
                eprintln!(
                    "registries: cache {t_cache:?}, start {:?}",
                    t.elapsed() - t_cache
                );
            }
            let mut st = tb.state();
            st.registry_pids = pids;
            st.save(&tb.dir)?;
        }
        tb.create_hosts(&client_pub)?;
        if self.certificates {
            tb.use_certificates()?;
        }
        if self.real_kubernetes.is_some() {
            crate::containerd::preload_release_images(&tb, &release_images)?;
        }
        Ok(tb)
    }
}

fn preflight() -> Result<()> {
    if unsafe { libc::geteuid() } != 0 {
        return Err(Error::Invalid(
            "the testbed needs root (it creates network namespaces and mounts): run as root".into(),
        ));
    }
    for (path, pkg) in [
        ("/usr/sbin/sshd", "openssh-server"),
        ("/usr/bin/ssh-keygen", "openssh-client"),
        ("/usr/bin/sudo", "sudo"),
        ("/usr/bin/nsenter", "util-linux"),
    ] {
        if !Path::new(path).exists() {
            return Err(Error::Invalid(format!(
                "{path} not found: the testbed's hosts need it (apt-get install {pkg})"
            )));
        }
    }
    Ok(())
}

/// A running set of simulated hosts. Dropping it powers every host off and removes its
/// namespaces, bridge and files (unless it was [`Testbed::attach`]ed or [`Testbed::keep`]).
#[derive(Debug)]
pub struct Testbed {
    dir: PathBuf,
    state: Mutex<TestbedState>,
    teardown_on_drop: bool,
    owned_dir: bool,
}

impl Testbed {
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The testbed in `dir`, made earlier (e.g. by `testbed up`). Dropping it changes nothing.
    pub fn attach(dir: impl AsRef<Path>) -> Result<Testbed> {
        let dir = dir.as_ref();
        let dir = dir
            .canonicalize()
            .map_err(|e| Error::io("resolve", dir, e))?;
        let state = TestbedState::load(&dir)?;
        Ok(Testbed {
            dir,
            state: Mutex::new(state),
            teardown_on_drop: false,
            owned_dir: false,
        })
    }

    /// Keeps the testbed running after this value is dropped (for `testbed up`); it is
    /// no longer reaped when this process dies.
    pub fn keep(mut self) {
        self.teardown_on_drop = false;
        let subnet = self.state().subnet;
        registry::register(&registry::Entry {
            subnet,
            dir: self.dir.clone(),
            owner: None,
            owned_dir: false,
        });
    }

    /// Tears down a testbed found in the registry whose owner died.
    pub(crate) fn reap(entry: &registry::Entry) -> Result<()> {
        let mut tb = Testbed::attach(&entry.dir)?;
        tb.owned_dir = entry.owned_dir;
        tb.down()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn hosts_json(&self) -> PathBuf {
        self.dir.join(state::HOSTS_FILE)
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.dir.join(state::KNOWN_HOSTS)
    }

    pub fn identity_file(&self) -> PathBuf {
        self.dir.join(state::CLIENT_KEY)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, TestbedState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bridge in the root namespace (`tbX`).
    pub fn bridge(&self) -> String {
        self.state().bridge.clone()
    }

    /// What the manager records about a host: index, netns, veth, PID 1.
    pub fn host_state(&self, name: &str) -> Result<HostState> {
        self.state().host(name).cloned()
    }

    /// The host's address on the bridge.
    fn host_address(&self, name: &str) -> Result<String> {
        Ok(self.host_state(name)?.address)
    }

    /// Whether the host is powered on (its PID 1 is alive).
    pub fn is_running(&self, host: &str) -> bool {
        self.host_state(host)
            .map(|h| host::running_pid(&self.dir, &h).is_ok())
            .unwrap_or(false)
    }

    /// The hosts as written to hosts.json.
    pub fn hosts(&self) -> Vec<HostEntry> {
        let st = self.state();
        st.hosts
            .iter()
            .map(|h| HostEntry {
                name: h.name.clone(),
                address: h.address.clone(),
                port: 22,
                user: st.user.clone(),
                identity_file: self.identity_file(),
                known_hosts: self.known_hosts(),
                public_address: st
                    .public_addresses
                    .then(|| net::public_address(st.subnet, h.index)),
                dns_name: st
                    .public_addresses
                    .then(|| format!("{}.tb{}.test", h.name, st.subnet)),
            })
            .collect()
    }

    /// One host's entry; errors name the hosts that exist.
    pub fn host(&self, name: &str) -> Result<HostEntry> {
        self.host_state(name)?;
        Ok(self.hosts().into_iter().find(|h| h.name == name).unwrap())
    }

    fn create_hosts(&self, client_pub: &str) -> Result<()> {
        let st = self.state().clone();
        let next = AtomicUsize::new(0);
        let results: Mutex<HashMap<String, Result<(i32, String)>>> = Mutex::new(HashMap::new());
        std::thread::scope(|s| {
            for _ in 0..parallel().min(st.hosts.len()) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(h) = st.hosts.get(i) else { break };
                    let r = self.create_host(&st, h, client_pub);
                    results.lock().unwrap().insert(h.name.clone(), r);
                });
            }
        });
        let mut results = results.into_inner().unwrap();
        let mut known = String::new();
        let mut first_err = None;
        {
            let mut stm = self.state();
            for h in stm.hosts.iter_mut() {
                match results.remove(&h.name) {
                    Some(Ok((pid, host_pub))) => {
                        h.init_pid = Some(pid);
                        known.push_str(&keys::known_hosts_line(&h.address, &host_pub));
                        known.push('\n');
                        if st.public_addresses {
                            let public = net::public_address(st.subnet, h.index);
                            let name = format!("{}.tb{}.test", h.name, st.subnet);
                            for a in [public, name] {
                                known.push_str(&keys::known_hosts_line(&a, &host_pub));
                                known.push('\n');
                            }
                        }
                    }
                    Some(Err(e)) => {
                        first_err.get_or_insert(e);
                    }
                    None => {}
                }
            }
            stm.save(&self.dir)?;
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        let kh = self.known_hosts();
        std::fs::write(&kh, known).map_err(|e| Error::io("write", &kh, e))?;
        if st.public_addresses {
            self.create_public_addresses(&st)?;
        }
        state::write_json(&self.hosts_json(), &self.hosts())
    }

    /// The DNAT rules and `DIR/etc-hosts` of `Builder::public_addresses`.
    fn create_public_addresses(&self, st: &TestbedState) -> Result<()> {
        let pairs: Vec<(String, String)> = st
            .hosts
            .iter()
            .map(|h| (net::public_address(st.subnet, h.index), h.address.clone()))
            .collect();
        net::create_public_addresses(st.subnet, &pairs)?;
        let mut hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        if !hosts.is_empty() && !hosts.ends_with('\n') {
            hosts.push('\n');
        }
        for e in self.hosts() {
            if let (Some(a), Some(n)) = (e.public_address, e.dns_name) {
                hosts += &format!("{a} {n}\n");
            }
        }
        let path = self.etc_hosts();
        std::fs::write(&path, hosts).map_err(|e| Error::io("write", &path, e))
    }

    /// With `Builder::public_addresses`: the machine's /etc/hosts plus every host's
    /// `NAME.tbX.test`. A tool resolves those names when run in a private mount namespace
    /// with this file bound over /etc/hosts (`unshare -m`, `mount --bind`), leaving the
    /// machine's own /etc/hosts alone.
    pub fn etc_hosts(&self) -> PathBuf {
        self.dir.join(state::ETC_HOSTS)
    }

    fn create_host(
        &self,
        st: &TestbedState,
        h: &HostState,
        client_pub: &str,
    ) -> Result<(i32, String)> {
        let t = Instant::now();
        host::prepare(&self.dir, st, h)?;
        let t_prepare = t.elapsed();
        let paths = HostPaths::new(&self.dir, &h.name);
        let key = paths.root.join("ssh_host_ed25519_key");
        let host_pub = keys::generate(&key, &format!("root@{}", h.name))?;
        let host_key = std::fs::read_to_string(&key).map_err(|e| Error::io("read", &key, e))?;
        let t_key = t.elapsed();
        net::create_host(st.subnet, h.index, &h.name)?;
        let t_net = t.elapsed();
        let repo = match &st.repo_cache {
            Some(cache) => Some(repo::provision(
                cache,
                &net::gateway(st.subnet),
                registries::hosts_entries(st.subnet),
            )?),
            None => None,
        };
        let provision = Provision {
            repo,
            os: st.os_of(h).as_str().to_string(),
            address: h.address.clone(),
            authorized_key: client_pub.to_string(),
            host_key,
            host_key_pub: host_pub.clone(),
            sudo_password: st.sudo_password,
        };
        let pid = host::boot(&self.dir, h, Some(provision))?;
        if std::env::var_os("TESTBED_TRACE").is_some() {
            eprintln!(
                "{}: prepare {t_prepare:?}, key {:?}, net {:?}, boot {:?}",
                h.name,
                t_key - t_prepare,
                t_net - t_key,
                t.elapsed() - t_net
            );
        }
        Ok((pid, host_pub))
    }

    /// Runs `argv` inside the host as root (a console login, not SSH: nothing is audited as
    /// `ssh`). Never fails on a non-zero exit; look at `Output::status`.
    pub fn exec(&self, host: &str, argv: &[&str]) -> Result<Output> {
        self.exec_with_input(host, argv, None)
    }

    pub fn exec_with_input(
        &self,
        host: &str,
        argv: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<Output> {
        let h = self.host_state(host)?;
        crate::cmd::output(&mut host::enter(&self.dir, &h, argv)?, stdin)
    }

    /// A `nsenter` command into the host, for callers that want their own stdio.
    pub fn exec_command(&self, host: &str, argv: &[&str]) -> Result<Command> {
        host::enter(&self.dir, &self.host_state(host)?, argv)
    }

    /// An OpenSSH client command to the host as `user` with the testbed's key and a
    /// strict known_hosts; append the remote command with `.arg(...)`.
    pub fn ssh(&self, host: &str, user: &str) -> Result<Command> {
        let h = self.host_state(host)?;
        let mut cmd = Command::new("ssh");
        cmd.args(["-F", "/dev/null", "-i"])
            .arg(self.identity_file())
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.known_hosts().display()
            ))
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "ConnectTimeout=5",
                "-o",
                "LogLevel=ERROR",
                "-p",
                "22",
            ])
            .arg(format!("{user}@{}", h.address));
        Ok(cmd)
    }

    /// The host's audit log: every SSH command line and every stand-in invocation.
    pub fn audit(&self, host: &str) -> Result<Vec<AuditRecord>> {
        self.host_state(host)?;
        let path = HostPaths::new(&self.dir, host).audit_log();
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
        json_lines(&path, &text)
    }

    /// A file's content as the host sees it. A running host is read through its own
    /// mounts; a stopped one from its disk (the overlay layers).
    pub fn read_file(&self, host: &str, path: &str) -> Result<Vec<u8>> {
        let h = self.host_state(host)?;
        match host::inside(&self.dir, &h, path) {
            Ok(p) => std::fs::read(&p).map_err(|e| Error::io("read (in the host)", path, e)),
            Err(_) => host::read_offline(&self.dir, &h, path)
                .map_err(|e| Error::io("read (from the stopped host's disk)", path, e)),
        }
    }

    /// Injects a fault read by the stand-ins (`ctl/faults/<kind>.json`). The lock and
    /// port faults are real: a process in the host holds the locks or listens on the port
    /// (until `clear_fault`, or the locks' time is up).
    pub fn fault(&self, host: &str, fault: Fault) -> Result<()> {
        self.host_state(host)?;
        let now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64()
        };
        let locks = |name: &str, until: f64, paths: &[&str]| {
            let secs = format!("{:.3}", (until - now()).max(0.0));
            let mut args = vec!["hold-locks".to_string(), name.to_string(), secs];
            args.extend(paths.iter().map(|p| p.to_string()));
            (args, paths.join(", "))
        };
        // (tb-sim's holder command and its arguments, what it holds)
        let holder = match &fault {
            Fault::DpkgLock { until } => Some(locks(
                "unattended-upgr",
                *until,
                &["/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock"],
            )),
            Fault::AptDaily { until } => Some(locks(
                "apt-get",
                *until,
                &["/var/lib/apt/lists/lock", "/var/lib/dpkg/lock-frontend"],
            )),
            Fault::PortInUse { port } => Some((
                vec![
                    "hold-port".to_string(),
                    "port-holder".to_string(),
                    port.to_string(),
                ],
                format!("TCP port {port}"),
            )),
            _ => None,
        };
        let file = HostPaths::new(&self.dir, host)
            .ctl()
            .join(layout::ctl::FAULTS)
            .join(fault.file_name());
        state::write_json(&file, &fault)?;
        let Some((mut args, what)) = holder else {
            return Ok(());
        };
        // The holder lets go when `clear_fault` removes the fault's file.
        let inside = format!(
            "{}/{}/{}",
            layout::CTL_DIR,
            layout::ctl::FAULTS,
            fault.file_name()
        );
        args.splice(1..1, ["--while".to_string(), inside]);
        let mut argv = vec![layout::SIM_BIN];
        argv.extend(args.iter().map(String::as_str));
        let out = self.exec(host, &argv)?;
        if !out.status.success() {
            let _ = std::fs::remove_file(&file);
            return Err(Error::Invalid(format!(
                "{host}: could not hold {what}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    /// Expires every bootstrap token of the cluster whose API server runs on
    /// `control_plane`: each `kube-system/bootstrap-token-*` Secret gets an `expiration`
    /// in the past, as if its TTL had run out, so a join with it fails like a stale
    /// join command does (the real controller-manager's tokencleaner then deletes the
    /// Secrets and its bootstrapsigner drops their signatures from cluster-info). Goes
    /// through the cluster's own kubectl with admin.conf, like an admin would: a merge
    /// patch of `data.expiration` per Secret, so no token secret is on a command line.
    pub fn expire_bootstrap_tokens(&self, control_plane: &str) -> Result<usize> {
        use base64::Engine as _;
        const KUBECTL: [&str; 5] = [
            "kubectl",
            "--kubeconfig",
            "/etc/kubernetes/admin.conf",
            "-n",
            "kube-system",
        ];
        let run = |args: &[&str]| -> Result<Vec<u8>> {
            let argv: Vec<&str> = KUBECTL.iter().chain(args).copied().collect();
            let out = self.exec(control_plane, &argv)?;
            if !out.status.success() {
                return Err(Error::Host {
                    host: control_plane.to_string(),
                    message: format!(
                        "{}: {}",
                        argv.join(" "),
                        String::from_utf8_lossy(&out.stderr).trim()
                    ),
                });
            }
            Ok(out.stdout)
        };
        let names = run(&[
            "get",
            "secrets",
            "--field-selector",
            "type=bootstrap.kubernetes.io/token",
            "-o",
            "name",
        ])?;
        let past = base64::engine::general_purpose::STANDARD.encode("2000-01-01T00:00:00Z");
        let patch = serde_json::json!({"data": {"expiration": past}}).to_string();
        let names = String::from_utf8_lossy(&names).into_owned();
        let names: Vec<&str> = names.lines().filter(|l| !l.is_empty()).collect();
        for name in &names {
            run(&["patch", name, "--type", "merge", "-p", &patch])?;
        }
        Ok(names.len())
    }

    /// Makes pkgs.k8s.io offer `minor` only up to patch `newest` (None: every patch the
    /// repositories have), for every host: the repository as it was on some earlier day.
    /// Hosts see the change at their next `apt-get update`, like a real release (the
    /// server reads `DIR/k8s-published.json` at every request).
    pub fn publish_kubernetes(&self, minor: u32, newest: Option<u32>) -> Result<()> {
        let path = self.dir.join(repo::K8S_PUBLISHED);
        let mut map: std::collections::BTreeMap<String, u32> = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        match newest {
            Some(p) => map.insert(minor.to_string(), p),
            None => map.remove(&minor.to_string()),
        };
        state::write_json(&path, &map)
    }

    /// Publishes a stable update of the Ubuntu archive:
    /// a newer docker.io in -updates, the older .deb removed from the pool, as an SRU
    /// does. Hosts whose lists are older still see the old version and get a 404 for it
    /// until they run `apt-get update`.
    pub fn publish_ubuntu_update(&self) -> Result<()> {
        let path = self.dir.join("ubuntu-updated");
        std::fs::write(&path, "").map_err(|e| Error::io("write", &path, e))
    }

    /// Makes the repository server misbehave for one of its host names (e.g.
    /// "pkgs.k8s.io"); `on: false` ends it.
    /// `bad-signature`: InRelease no longer matches its signature; `truncated`: every
    /// .deb download ends half-way (the connection closes short of its Content-Length);
    /// `stall`: every request is taken and never answered (a mirror that hangs: the
    /// client's own timeout ends it); `stall-body`: every .deb download stops half-way
    /// with the connection left open. A stalled connection closes when the fault ends.
    pub fn repo_fault(&self, kind: &str, host: &str, on: bool) -> Result<()> {
        let dir = self.dir.join("repo-faults");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
        let path = dir.join(kind);
        let mut hosts: Vec<String> = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.trim() != host)
            .map(str::to_string)
            .collect();
        if on {
            hosts.push(host.to_string());
        }
        std::fs::write(&path, hosts.join("\n") + "\n").map_err(|e| Error::io("write", &path, e))
    }

    /// Air-gaps `host`: from now on no public name resolves for it (pkgs.k8s.io,
    /// raw.githubusercontent.com, the distro archive, the container registries
    /// registry-1.docker.io, registry.k8s.io and quay.io; the testbed's peers still do),
    /// and every attempt is kept for [`Testbed::public_lookups`].
    /// The host's /etc/hosts loses the lines that resolve the public names to the
    /// repository server and the registries, so they go to the name server
    /// (`tb-sim repo-serve`), which answers NXDOMAIN and keeps each query.
    /// A Go program that runs (containerd) and read /etc/hosts less than 5 s before
    /// keeps using what it read until then (Go's net/hosts.go cacheMaxAge): seen here, a
    /// pull right after `air_gap` on a host that had just pulled still resolved the
    /// registry, one 6 s later did not.
    pub fn air_gap(&self, host: &str) -> Result<()> {
        let address = self.host_address(host)?;
        let dir = self.dir.join(repo::PUBLIC_LOOKUPS);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
        let log = dir.join(address);
        std::fs::write(&log, "").map_err(|e| Error::io("write", &log, e))?;
        let hosts = String::from_utf8_lossy(&self.read_file(host, "/etc/hosts")?).into_owned();
        let kept: String = hosts
            .lines()
            .filter(|l| {
                let names: Vec<&str> = l.split_whitespace().skip(1).collect();
                names != repo::HOSTS && !registries::REGISTRIES.iter().any(|r| names == [r.host])
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let out = self.exec_with_input(
            host,
            &["sh", "-c", "cat > /etc/hosts"],
            Some(kept.as_bytes()),
        )?;
        if !out.status.success() {
            return Err(Error::Host {
                host: host.to_string(),
                message: format!(
                    "rewriting /etc/hosts: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        Ok(())
    }

    /// The public names `host` tried to resolve since [`Testbed::air_gap`], in order.
    /// Each name once, though the resolver asks for A and AAAA records and retries.
    pub fn public_lookups(&self, host: &str) -> Result<Vec<String>> {
        let path = self
            .dir
            .join(repo::PUBLIC_LOOKUPS)
            .join(self.host_address(host)?);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mut names: Vec<String> = Vec::new();
                for l in text.lines() {
                    if !names.iter().any(|n| n == l) {
                        names.push(l.to_string());
                    }
                }
                Ok(names)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::io("read", path, e)),
        }
    }

    /// Removes a fault by its file name (`Fault::file_name`), e.g. "dpkg-lock.json".
    /// Removing an absent fault is fine. A fault held by a process (locks, a port) is
    /// cleared once that process is gone, so what it held is free when this returns:
    /// the holder keeps an flock on the fault's file while it lives.
    pub fn clear_fault(&self, host: &str, file_name: &str) -> Result<()> {
        self.host_state(host)?;
        let path = HostPaths::new(&self.dir, host)
            .ctl()
            .join(layout::ctl::FAULTS)
            .join(file_name);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("open", path, e)),
        };
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io("remove", path, e))
            }
            _ => {}
        }
        // A holder sees the file gone within 50 ms and exits.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        use std::os::unix::io::AsRawFd;
        while unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            if std::time::Instant::now() > deadline {
                return Err(Error::host(
                    host,
                    format!("the holder of fault {file_name} did not end within 10 s"),
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(())
    }

    /// Powers the host off: every process in it dies (sshd, daemons, sessions) and its
    /// address stops answering. Files survive; /run and the kernel state do not.
    pub fn stop(&self, host: &str) -> Result<()> {
        let mut st = self.state();
        let h = st.host(host)?.clone();
        host::power_off(&self.dir, &st, &h)?;
        net::set_link(st.subnet, h.index, false)?;
        st.host_mut(host)?.init_pid = None;
        st.save(&self.dir)
    }

    /// Boots a stopped host again (like a reboot: fresh /run, `tb-sim boot`, sshd with the
    /// same host key).
    pub fn start(&self, host: &str) -> Result<()> {
        let mut st = self.state();
        let h = st.host(host)?.clone();
        if host::running_pid(&self.dir, &h).is_ok() {
            return Err(Error::host(host, "is already running"));
        }
        // A dead PID 1 may have left processes that entered from outside.
        host::power_off(&self.dir, &st, &h)?;
        net::set_link(st.subnet, h.index, true)?;
        let pid = host::boot(&self.dir, &h, None)?;
        st.host_mut(host)?.init_pid = Some(pid);
        st.save(&self.dir)
    }

    /// The host's console: what its PID 1 and sshd (`-e`, LogLevel INFO) wrote to stderr,
    /// e.g. one `Accepted publickey for USER from ADDRESS` line per SSH login.
    pub fn console_log(&self, host: &str) -> Result<String> {
        self.host_state(host)?;
        let path = HostPaths::new(&self.dir, host).root.join("init.log");
        std::fs::read_to_string(&path).map_err(|e| Error::io("read", path, e))
    }

    /// Puts the host in a private network behind a bastion: from now on it accepts
    /// connections from the other hosts of the testbed but not from this machine (a
    /// connect times out), so a tool reaches it only through another host, as operators
    /// reach private subnets through a jump host. Its own connections out (the package
    /// mirror) still work. Survives `stop`/`start` (the namespace keeps the rule). Needs
    /// `nft`.
    pub fn behind_bastion(&self, host: &str) -> Result<()> {
        let st = self.state();
        st.host(host)?;
        net::isolate_from_machine(st.subnet, host)
    }

    /// Stops (SIGSTOP) every process of the host: connections hang, nothing answers.
    pub fn freeze(&self, host: &str) -> Result<()> {
        self.signal_all(host, libc::SIGSTOP)
    }

    pub fn thaw(&self, host: &str) -> Result<()> {
        self.signal_all(host, libc::SIGCONT)
    }

    fn signal_all(&self, host: &str, sig: i32) -> Result<()> {
        let st = self.state();
        st.host(host)?;
        let ino = net::netns_inode(st.subnet, host)
            .ok_or_else(|| Error::host(host, "has no network namespace"))?;
        procs::signal(&procs::in_netns(ino), sig);
        Ok(())
    }

    /// Gives the host a new SSH host key and makes its sshd use it. known_hosts is not
    /// updated, so a strict client now refuses the host, as after a reinstall.
    pub fn replace_host_key(&self, host: &str) -> Result<()> {
        let h = self.host_state(host)?;
        let key = HostPaths::new(&self.dir, host)
            .root
            .join("ssh_host_ed25519_key");
        let new_pub = keys::generate(&key, &format!("root@{host}"))?;
        let private = std::fs::read(&key).map_err(|e| Error::io("read", &key, e))?;
        for (path, data) in [
            ("/etc/ssh/ssh_host_ed25519_key", private),
            (
                "/etc/ssh/ssh_host_ed25519_key.pub",
                format!("{new_pub}\n").into_bytes(),
            ),
        ] {
            let p = host::inside(&self.dir, &h, path)?;
            std::fs::write(&p, data).map_err(|e| Error::io("write (in the host)", path, e))?;
        }
        // sshd re-executes itself on SIGHUP and reloads its keys.
        let sshd = host::sshd_pid(&self.dir, &h)?;
        unsafe { libc::kill(sshd, libc::SIGHUP) };
        let want = new_pub
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let start = Instant::now();
        loop {
            let out = crate::cmd::output(
                Command::new("ssh-keyscan").args(["-T", "2", "-t", "ed25519", &h.address]),
                None,
            )?;
            if String::from_utf8_lossy(&out.stdout).contains(&want) {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(15) {
                return Err(Error::host(
                    host,
                    "sshd did not pick up the new host key within 15s",
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sets up an SSH certificate authority as fleets with one do, with the machine's real
    /// `ssh-keygen` and each host's real sshd: a host CA signs every host key for the
    /// host's address (`ssh-keygen -h -n ADDRESS`), written as
    /// `/etc/ssh/ssh_host_ed25519_key-cert.pub` and served (`HostCertificate`); a user CA
    /// signs the testbed's client key for `root` and `ubuntu` (`DIR/id_ed25519-cert.pub`),
    /// which every sshd accepts (`TrustedUserCAKeys /etc/ssh/user_ca.pub`).
    /// `DIR/known_hosts_ca` trusts the hosts through one `@cert-authority` line.
    pub fn use_certificates(&self) -> Result<()> {
        let host_ca = self.dir.join("host_ca");
        let user_ca = self.dir.join("user_ca");
        let host_ca_pub = keys::generate(&host_ca, "testbed host CA")?;
        let user_ca_pub = keys::generate(&user_ca, "testbed user CA")?;
        let client = self.identity_file();
        crate::cmd::run(
            Command::new("ssh-keygen")
                .args(["-q", "-s"])
                .arg(&user_ca)
                .args(["-I", "testbed", "-n", "root,ubuntu"])
                .arg(keys::pub_path(&client)),
        )?;
        let st = self.state().clone();
        for h in &st.hosts {
            let key = HostPaths::new(&self.dir, &h.name)
                .root
                .join("ssh_host_ed25519_key");
            crate::cmd::run(
                Command::new("ssh-keygen")
                    .args(["-q", "-s"])
                    .arg(&host_ca)
                    .args(["-h", "-I", &h.name, "-n", &h.address])
                    .arg(keys::pub_path(&key)),
            )?;
            let cert_path = {
                let mut s = key.as_os_str().to_owned();
                s.push("-cert.pub");
                PathBuf::from(s)
            };
            let cert = std::fs::read(&cert_path).map_err(|e| Error::io("read", &cert_path, e))?;
            let config = host::inside(&self.dir, h, "/etc/ssh/sshd_config")?;
            let mut text =
                std::fs::read_to_string(&config).map_err(|e| Error::io("read", &config, e))?;
            text.push_str(
                "HostCertificate /etc/ssh/ssh_host_ed25519_key-cert.pub\n\
                 TrustedUserCAKeys /etc/ssh/user_ca.pub\n",
            );
            for (path, data) in [
                ("/etc/ssh/ssh_host_ed25519_key-cert.pub", cert),
                (
                    "/etc/ssh/user_ca.pub",
                    format!("{user_ca_pub}\n").into_bytes(),
                ),
                ("/etc/ssh/sshd_config", text.into_bytes()),
            ] {
                let p = host::inside(&self.dir, h, path)?;
                std::fs::write(&p, data).map_err(|e| Error::io("write (in the host)", path, e))?;
            }
            // sshd re-executes itself on SIGHUP and rereads its configuration.
            let sshd = host::sshd_pid(&self.dir, h)?;
            unsafe { libc::kill(sshd, libc::SIGHUP) };
            let start = Instant::now();
            loop {
                let out = crate::cmd::output(
                    Command::new("ssh-keyscan").args(["-c", "-T", "2", &h.address]),
                    None,
                )?;
                if String::from_utf8_lossy(&out.stdout).contains("-cert-v01@openssh.com") {
                    break;
                }
                if start.elapsed() > Duration::from_secs(15) {
                    return Err(Error::host(
                        &h.name,
                        "sshd did not serve its host certificate within 15s",
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let kh = self.dir.join("known_hosts_ca");
        let pattern = format!(
            "{}.*",
            st.hosts[0].address.rsplit_once('.').map_or("", |p| p.0)
        );
        std::fs::write(&kh, format!("@cert-authority {pattern} {host_ca_pub}\n"))
            .map_err(|e| Error::io("write", &kh, e))
    }

    /// Tears everything down: processes, namespaces (and with them mounts and veths), the
    /// bridge and the testbed's files in the directory.
    pub fn down(mut self) -> Result<()> {
        self.teardown_on_drop = false;
        self.teardown()
    }

    fn teardown(&self) -> Result<()> {
        let st = self.state().clone();
        // PID 1s first: each takes its whole PID namespace with it.
        for h in &st.hosts {
            if let Some(pid) = host::pid1(&self.dir, h) {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        // Then per host, in parallel: wait for the namespace to empty, delete it, and
        // delete the host's files (unlinking thousands of small files is the slow part).
        let next = AtomicUsize::new(0);
        let errors: Mutex<Vec<String>> = Mutex::new(vec![]);
        std::thread::scope(|s| {
            for _ in 0..parallel().min(st.hosts.len()) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(h) = st.hosts.get(i) else { break };
                    let r = host::power_off(&self.dir, &st, h)
                        .and_then(|_| net::delete_host(st.subnet, h.index, &h.name))
                        .and_then(|_| host::remove_files(&self.dir, h));
                    if let Err(e) = r {
                        errors.lock().unwrap().push(e.to_string());
                    }
                });
            }
        });
        let mut errors = errors.into_inner().unwrap();
        if let Some(pid) = st.repo_pid {
            repo::stop(pid);
        }
        for pid in &st.registry_pids {
            repo::stop(*pid);
        }
        if st.public_addresses {
            if let Err(e) = net::delete_public_addresses(st.subnet) {
                errors.push(e.to_string());
            }
        }
        if let Err(e) = net::delete_bridge(st.subnet) {
            errors.push(e.to_string());
        }
        if errors.is_empty() {
            registry::unregister(st.subnet);
        }
        if errors.is_empty() {
            let mut remove: Vec<PathBuf> = [
                "hosts",
                "lower",
                SIM_COPY,
                state::HOSTS_FILE,
                state::KNOWN_HOSTS,
                state::ETC_HOSTS,
                state::CLIENT_KEY,
                "id_ed25519.pub",
                state::STATE_FILE,
                repo::K8S_PUBLISHED,
                "repo-serve.log",
                registries::DIR,
                "ubuntu-updated",
                "repo-faults",
            ]
            .iter()
            .map(|f| self.dir.join(f))
            .collect();
            if self.owned_dir {
                remove = vec![self.dir.clone()];
            }
            for p in remove {
                let r = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
                if let Err(e) = r {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        errors.push(format!("{}: {e}", p.display()));
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "teardown incomplete: {}",
                errors.join("; ")
            )))
        }
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if self.teardown_on_drop {
            if let Err(e) = self.teardown() {
                eprintln!("testbed: {e}");
            }
        }
    }
}

/// Parses a JSON Lines file's text (blank lines skipped).
/// The records of a JSON Lines file that stand-ins append to while it is read: a last
/// line without its newline is an append still in progress (a reader can see part of a
/// write), not a record yet, and is left for the next read.
fn json_lines<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<Vec<T>> {
    let complete = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    complete
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|source| Error::Json {
                path: path.to_path_buf(),
                source,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_still_being_appended_is_not_read_yet() {
        let path = Path::new("audit.jsonl");
        let text = "{\"a\":1}\n{\"a\":2}\n{\"a\":";
        let records: Vec<serde_json::Value> = json_lines(path, text).unwrap();
        assert_eq!(
            records,
            vec![serde_json::json!({"a": 1}), serde_json::json!({"a": 2})]
        );
        assert!(
            json_lines::<serde_json::Value>(path, "{\"a\":\n").is_err(),
            "a complete bad line is an error"
        );
        assert!(json_lines::<serde_json::Value>(path, "")
            .unwrap()
            .is_empty());
    }
}
