//! `tb-sim repo-build OUT [--containerd DIR] [--k8s DIR]`: the testbed's package
//! repositories as files, built once per catalog (the host manager caches OUT by the
//! stand-in binary's hash, see `testbed::repo`), so a testbed of any size only starts a
//! server over them.
//!
//! - `ubuntu/`: an archive shaped like archive.ubuntu.com/ubuntu (and security.ubuntu.com):
//!   `dists/SUITE/{InRelease,Release,Release.gpg}` and `dists/SUITE/COMPONENT/binary-amd64/
//!   Packages` for noble and jammy with -updates, -backports and -security, every
//!   component Ubuntu's sources name, and `pool/COMPONENT/L/NAME/NAME_VERSION_amd64.deb`.
//! - `k8s/v1.N/`: pkgs.k8s.io's flat repository per minor with a release built in `--k8s`
//!   (only built releases have packages): the .debs under `amd64/`, and
//!   for every possible "newest published patch" P a directory `nP/` with `Packages`,
//!   `Release`, `InRelease` listing the patches up to P (the server picks the one the
//!   testbed published, so publishing needs no signing at run time). `k8s/Release.key`.
//! - `calico/vX.Y.Z/calico.yaml`: what raw.githubusercontent.com serves.
//! - `keys/`: `archive-keyring.gpg` (Ubuntu archive key, binary), `k8s-Release.key`,
//!   `ca.crt`, `server.crt`, `server.key` (TLS for every host name the server answers),
//!   `NAME.crt`, `NAME.key` for each container registry (`testbed::registries`).
//!
//! Keys and certificates are generated here (never kept in the repository).
//! Each .deb is built by dpkg-deb from the catalog: real name, version, Depends,
//! Recommends, conffiles and maintainer scripts shaped like the package's; its payload is
//! what the testbed has for the program: links to the real program where one is built
//! (`command_target`), else to the stand-in binary.

use std::fmt::Write as _;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use testbed::layout;
use testbed::repo::CALICO_RELEASES;

use super::{calico, catalog};
use crate::os::containerd;

/// Host names the server answers for, as they appear in the TLS certificate.
pub const SERVED_HOSTS: &[&str] = &[
    "archive.ubuntu.com",
    "security.ubuntu.com",
    "pkgs.k8s.io",
    "raw.githubusercontent.com",
];

/// Releases with an archive: (os, codename, version).
const RELEASES: &[(&str, &str, &str)] = &[
    ("ubuntu-24.04", "noble", "24.04"),
    ("ubuntu-22.04", "jammy", "22.04"),
];
const COMPONENTS: &[&str] = &["main", "restricted", "universe", "multiverse"];

type Res<T> = Result<T, String>;

pub fn main(args: &[String]) -> i32 {
    let usage = || {
        eprintln!("usage: tb-sim repo-build OUT [--containerd DIR] [--k8s DIR]");
        2
    };
    let Some((out, mut flags)) = args.split_first() else {
        return usage();
    };
    let mut real = Real::default();
    while let [flag, dir, rest @ ..] = flags {
        match flag.as_str() {
            "--containerd" => real.containerd = Some(Path::new(dir)),
            "--k8s" => real.k8s = Some(Path::new(dir)),
            _ => return usage(),
        }
        flags = rest;
    }
    if !flags.is_empty() {
        return usage();
    }
    match build(Path::new(out), &real) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("tb-sim repo-build: {e}");
            1
        }
    }
}

/// The real programs the packages carry instead of the stand-in, where the testbed has
/// them built.
#[derive(Default)]
struct Real<'a> {
    /// The directory of the real containerd (`testbed::containerd`), which the package of
    /// that upstream version carries.
    containerd: Option<&'a Path>,
    /// The directory of the built Kubernetes releases (`testbed::k8s`, one `vX.Y.Z/` each):
    /// the kubeadm and kubectl packages of a built release carry its real programs.
    k8s: Option<&'a Path>,
}

fn build(out: &Path, real: &Real) -> Res<()> {
    mkdir(out)?;
    let keys = out.join("keys");
    mkdir(&keys)?;
    let gpg = Gpg::new(&keys.join("gnupg"))?;
    let archive_fpr =
        gpg.generate("Ubuntu Archive Automatic Signing Key (testbed) <ftpmaster@ubuntu.com>")?;
    let k8s_fpr =
        gpg.generate("isv:kubernetes OBS Project (testbed) <isv:kubernetes@build.opensuse.org>")?;
    write(
        &keys.join("archive-keyring.gpg"),
        &gpg.export(&archive_fpr, false)?,
    )?;
    write(&keys.join("k8s-Release.key"), &gpg.export(&k8s_fpr, true)?)?;
    tls(&keys)?;

    let work = out.join("work");
    mkdir(&work)?;
    // The archive: one pool shared by the releases (same name and version = same file).
    let ubuntu = out.join("ubuntu");
    // Each release's archive as published first (`dists/`) and after a stable update
    // (`dists-updated/`, see `catalog::distro_updated`); one pool for all.
    let releases: Vec<_> = RELEASES
        .iter()
        .flat_map(|r| {
            [
                (r, "dists", catalog::distro(r.0)),
                (r, "dists-updated", catalog::distro_updated(r.0)),
            ]
        })
        .collect();
    let k8s_repos: Vec<_> = built_patches(real.k8s)?
        .into_iter()
        .map(|(minor, patches)| {
            let newest = patches.iter().copied().max().unwrap_or(0);
            (minor, newest, catalog::k8s_repo(minor, &patches))
        })
        .collect();
    // Every .deb first, in parallel (dpkg-deb mostly waits for its tar and gzip).
    let mut jobs: Vec<(catalog::Package, PathBuf)> = Vec::new();
    for (_, _, pkgs) in &releases {
        for p in pkgs {
            jobs.push((p.clone(), ubuntu.join(pool_file(p))));
        }
    }
    let k8s = out.join("k8s");
    for (minor, _, pkgs) in &k8s_repos {
        for p in pkgs {
            jobs.push((p.clone(), k8s.join(format!("v1.{minor}")).join(k8s_file(p))));
        }
    }
    jobs.sort_by(|a, b| a.1.cmp(&b.1));
    jobs.dedup_by(|a, b| a.1 == b.1);
    build_debs(&work, &jobs, real)?;
    for ((_, codename, version), dists, pkgs) in &releases {
        let mut debs = Vec::new();
        for p in pkgs {
            let file = pool_file(p);
            let path = ubuntu.join(&file);
            debs.push((p, file, path));
        }
        for suffix in ["", "-updates", "-backports", "-security"] {
            let suite = format!("{codename}{suffix}");
            let dir = ubuntu.join(dists).join(&suite);
            let mut files = Vec::new();
            for comp in COMPONENTS {
                let idx: Vec<_> = debs
                    .iter()
                    .filter(|(p, _, _)| p.component == format!("{suite}/{comp}"))
                    .collect();
                let text =
                    packages_index(idx.iter().map(|(p, f, d)| (*p, f.as_str(), d.as_path())))?;
                let rel = format!("{comp}/binary-amd64/Packages");
                write(&dir.join(&rel), text.as_bytes())?;
                files.push((rel, text.into_bytes()));
            }
            let release = release_file(
                &[
                    ("Origin", "Ubuntu"),
                    ("Label", "Ubuntu"),
                    ("Suite", &suite),
                    ("Version", version),
                    ("Codename", codename),
                    ("Architectures", "amd64"),
                    ("Components", &COMPONENTS.join(" ")),
                    (
                        "Description",
                        &format!("Ubuntu {codename} {version} (testbed)"),
                    ),
                ],
                &files,
            );
            gpg.sign_release(&archive_fpr, &dir, &release)?;
        }
    }
    // What the stable update replaced leaves the pool (a 404 for hosts with older lists).
    let mut replaced = String::new();
    for (os, _, _) in RELEASES {
        let updated = catalog::distro_updated(os);
        for p in catalog::distro(os).iter().filter(|p| !updated.contains(p)) {
            let file = pool_file(p);
            replaced.push_str(file.rsplit('/').next().unwrap_or(&file));
            replaced.push('\n');
        }
    }
    write(&ubuntu.join("replaced-by-update"), replaced.as_bytes())?;
    // pkgs.k8s.io, one flat repository per minor.
    std::fs::copy(
        keys.join("k8s-Release.key"),
        k8s_mkdir(&k8s)?.join("Release.key"),
    )
    .map_err(|e| format!("copy Release.key: {e}"))?;
    for (minor, newest, pkgs) in &k8s_repos {
        let (minor, newest) = (*minor, *newest);
        let repo = k8s.join(format!("v1.{minor}"));
        let mut debs = Vec::new();
        for p in pkgs {
            let file = k8s_file(p);
            let path = repo.join(&file);
            debs.push((p, file, path));
        }
        for published in 0..=newest {
            let dir = repo.join(format!("n{published}"));
            let idx: Vec<_> = debs
                .iter()
                .filter(|(p, _, _)| {
                    !matches!(p.name.as_str(), "kubeadm" | "kubelet" | "kubectl")
                        || patch_of(&p.version).is_some_and(|n| n <= published)
                })
                .collect();
            let text = packages_index(idx.iter().map(|(p, f, d)| (*p, f.as_str(), d.as_path())))?;
            write(&dir.join("Packages"), text.as_bytes())?;
            let label = format!("isv:kubernetes:core:stable:v1.{minor}");
            let origin = format!("obs://build.opensuse.org/{label}/deb");
            let release = release_file(
                &[
                    ("Origin", &origin),
                    ("Label", &label),
                    ("Architectures", "amd64"),
                ],
                &[("Packages".to_string(), text.into_bytes())],
            );
            gpg.sign_release(&k8s_fpr, &dir, &release)?;
        }
    }
    // GitHub's raw host: Calico's manifests.
    for (minor, newest) in CALICO_RELEASES {
        for patch in 0..=*newest {
            let v = format!("v3.{minor}.{patch}");
            write(
                &out.join("calico").join(&v).join("calico.yaml"),
                calico::calico_manifest(&v).as_bytes(),
            )?;
        }
    }
    gpg.stop();
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// The built Kubernetes releases in `k8s` (testbed/k8s/ output, one `vX.Y.Z/` each),
/// as (minor, patches) in ascending order.
fn built_patches(k8s: Option<&Path>) -> Res<Vec<(u32, Vec<u32>)>> {
    let Some(k8s) = k8s else {
        return Ok(Vec::new());
    };
    let mut by_minor = std::collections::BTreeMap::<u32, Vec<u32>>::new();
    for release in testbed::k8s::built_releases(k8s).map_err(|e| e.to_string())? {
        let mut parts = release.trim_start_matches('v').split('.').skip(1);
        let (Some(Ok(minor)), Some(Ok(patch))) = (
            parts.next().map(str::parse::<u32>),
            parts.next().map(str::parse::<u32>),
        ) else {
            return Err(format!("{}: {release} is not vX.Y.Z", k8s.display()));
        };
        by_minor.entry(minor).or_default().push(patch);
    }
    for patches in by_minor.values_mut() {
        patches.sort();
    }
    Ok(by_minor.into_iter().collect())
}

/// The patch number of a package version ("1.36.3-1.1" -> 3).
fn patch_of(version: &str) -> Option<u32> {
    version.split('-').next()?.split('.').nth(2)?.parse().ok()
}

/// Where the archive keeps a package: `pool/COMPONENT/L/NAME/NAME_VERSION_amd64.deb`
/// (the version without its epoch, as in Ubuntu's pool).
fn pool_file(p: &catalog::Package) -> String {
    let comp = p.component.split('/').nth(1).unwrap_or("main");
    format!(
        "pool/{comp}/{}/{}/{}_{}_amd64.deb",
        &p.name[..1],
        p.name,
        p.name,
        no_epoch(&p.version)
    )
}

fn k8s_file(p: &catalog::Package) -> String {
    format!("amd64/{}_{}_amd64.deb", p.name, p.version)
}

/// Builds the .debs on a few threads.
fn build_debs(work: &Path, jobs: &[(catalog::Package, PathBuf)], real: &Real) -> Res<()> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let errors = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some((p, path)) = jobs.get(i) else { break };
                if let Err(e) = deb(&work.join(i.to_string()), p, path, real) {
                    errors.lock().unwrap().push(e);
                }
            });
        }
    });
    match errors.into_inner().unwrap().pop() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn k8s_mkdir(k8s: &Path) -> Res<PathBuf> {
    mkdir(k8s)?;
    Ok(k8s.to_path_buf())
}

fn no_epoch(v: &str) -> &str {
    v.split_once(':').map_or(v, |(_, r)| r)
}

/// A `Packages` index with the fields apt needs to fetch and verify each file.
fn packages_index<'a>(
    debs: impl Iterator<Item = (&'a catalog::Package, &'a str, &'a Path)>,
) -> Res<String> {
    let mut s = String::new();
    for (p, file, path) in debs {
        let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let _ = write!(s, "{}", control(p));
        let _ = writeln!(s, "Filename: {file}");
        let _ = writeln!(s, "Size: {}", data.len());
        let _ = writeln!(s, "SHA256: {:x}", Sha256::digest(&data));
        s.push('\n');
    }
    Ok(s)
}

/// The package's control stanza (`DEBIAN/control`, and the start of its index entry).
fn control(p: &catalog::Package) -> String {
    let mut s = format!(
        "Package: {}\nVersion: {}\nArchitecture: amd64\nMaintainer: {}\nInstalled-Size: {}\n",
        p.name,
        p.version,
        maintainer(&p.name),
        1
    );
    if !p.depends.is_empty() {
        let _ = writeln!(s, "Depends: {}", p.depends);
    }
    if !p.recommends.is_empty() {
        let _ = writeln!(s, "Recommends: {}", p.recommends);
    }
    let section = p.component.split('/').nth(1).unwrap_or("");
    let _ = writeln!(
        s,
        "Section: {}\nPriority: optional",
        match section {
            "" | "main" => "admin".to_string(),
            c => format!("{c}/admin"),
        }
    );
    let _ = writeln!(s, "Description: {} (testbed build)", p.name);
    s
}

fn maintainer(pkg: &str) -> &'static str {
    if is_k8s(pkg) {
        "Kubernetes Authors <dev@kubernetes.io>"
    } else {
        "Ubuntu Developers <ubuntu-devel-discuss@lists.ubuntu.com>"
    }
}

fn is_k8s(pkg: &str) -> bool {
    matches!(
        pkg,
        "kubeadm" | "kubelet" | "kubectl" | "cri-tools" | "kubernetes-cni"
    )
}

/// What a package's command is: a link to the real program where the testbed has it
/// (the real containerd of its version; kubeadm and kubectl of a built release, e.g.
/// 1.35.4-1.1 -> `K8S/v1.35.4/kubeadm`, the only ones the catalog offers), else to the
/// stand-in binary. The kubelet package keeps the stand-in: the real kubelet needs
/// containers. A kubeadm or kubectl without its real program is an error: nothing stands
/// in for them.
fn command_target(p: &catalog::Package, cmd: &str, real: &Real) -> Res<PathBuf> {
    let upstream = containerd::upstream(&p.version);
    let dir = match p.name.as_str() {
        "containerd" if upstream == testbed::containerd::VERSION => {
            real.containerd.map(Path::to_path_buf)
        }
        "kubeadm" | "kubectl" => {
            let dir = real.k8s.map(|k8s| k8s.join(format!("v{upstream}")));
            let program = dir.as_ref().map(|d| d.join(cmd));
            return match program {
                Some(program) if program.is_file() => Ok(program),
                _ => Err(format!(
                    "{} {}: no real {cmd} (testbed/k8s/build.sh build v{upstream})",
                    p.name, p.version
                )),
            };
        }
        _ => None,
    };
    Ok(match dir.map(|d| d.join(cmd)) {
        Some(program) if program.is_file() => program,
        _ => PathBuf::from(layout::SIM_BIN),
    })
}

/// Builds one .deb with dpkg-deb.
fn deb(work: &Path, p: &catalog::Package, out: &Path, real: &Real) -> Res<()> {
    let root = work.join(format!("{}_{}", p.name, p.version));
    let _ = std::fs::remove_dir_all(&root);
    let debian = root.join("DEBIAN");
    mkdir(&debian)?;
    write(&debian.join("control"), control(p).as_bytes())?;
    for c in catalog::commands(&p.name) {
        let link = root
            .join(catalog::command_dir(c).trim_start_matches('/'))
            .join(c);
        mkdir(link.parent().unwrap())?;
        let target = command_target(p, c, real)?;
        // The real kubeadm and kubectl go through the audit log like apt-get (tb-sim's
        // `audited`): the package also links /usr/local/sbin/NAME, first on PATH, to tb-sim.
        if matches!(*c, "kubeadm" | "kubectl") {
            let audited = root
                .join(layout::STANDIN_DIR.trim_start_matches('/'))
                .join(c);
            mkdir(audited.parent().unwrap())?;
            symlink(layout::SIM_BIN, &audited)
                .map_err(|e| format!("{}: {e}", audited.display()))?;
        }
        symlink(target, &link).map_err(|e| format!("{}: {e}", link.display()))?;
    }
    for f in catalog::extra_files(&p.name) {
        let link = root.join(f.trim_start_matches('/'));
        mkdir(link.parent().unwrap())?;
        symlink(layout::SIM_BIN, &link).map_err(|e| format!("{}: {e}", link.display()))?;
    }
    let mut conffiles = Vec::new();
    for (path, content) in package_files(&p.name) {
        write(&root.join(path.trim_start_matches('/')), content.as_bytes())?;
        if path.starts_with("/etc/") {
            conffiles.push(path);
        }
    }
    for d in package_dirs(&p.name) {
        mkdir(&root.join(d.trim_start_matches('/')))?;
    }
    if !conffiles.is_empty() {
        write(
            &debian.join("conffiles"),
            (conffiles.join("\n") + "\n").as_bytes(),
        )?;
    }
    if catalog::has_maintainer_scripts(&p.name) {
        for script in ["postinst", "prerm", "postrm"] {
            let path = debian.join(script);
            write(&path, maintainer_script(&p.name, script).as_bytes())?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    mkdir(out.parent().unwrap())?;
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zgzip", "-z1", "--build"])
        .arg(&root)
        .arg(out))?;
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

/// Regular files a package ships besides its commands: systemd units (in /usr/lib, as
/// both releases' packages install them), the kubelet drop-in kubeadm's package brings,
/// containerd's configuration (a conffile).
fn package_files(pkg: &str) -> Vec<(&'static str, &'static str)> {
    match pkg {
        "containerd" => vec![
            (
                "/usr/lib/systemd/system/containerd.service",
                CONTAINERD_SERVICE,
            ),
            (containerd::CONFIG_PATH, containerd::PACKAGED_CONFIG),
        ],
        "docker.io" => vec![
            ("/usr/lib/systemd/system/docker.service", DOCKER_SERVICE),
            ("/usr/lib/systemd/system/docker.socket", DOCKER_SOCKET),
        ],
        "kubelet" => vec![("/usr/lib/systemd/system/kubelet.service", KUBELET_SERVICE)],
        "kubeadm" => vec![(
            "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf",
            KUBEADM_DROPIN,
        )],
        _ => vec![],
    }
}

fn package_dirs(pkg: &str) -> &'static [&'static str] {
    match pkg {
        "kubelet" => &["/etc/kubernetes/manifests", "/var/lib/kubelet"],
        _ => &[],
    }
}

/// debhelper-shaped maintainer scripts: the systemd part (enable, start, stop, purge
/// the enablement) is what `tb-sim package-hook` does for the simulated systemd.
fn maintainer_script(pkg: &str, script: &str) -> String {
    let hook = format!("{} package-hook", layout::SIM_BIN);
    match script {
        "postinst" => format!(
            "#!/bin/sh\nset -e\n# Automatically added by dh_installsystemd\nif [ \"$1\" = \"configure\" ] || [ \"$1\" = \"abort-upgrade\" ] || [ \"$1\" = \"abort-deconfigure\" ] || [ \"$1\" = \"abort-remove\" ] ; then\n\t{hook} postinst {pkg} \"$2\"\nfi\n# End automatically added section\n"
        ),
        "prerm" => format!(
            "#!/bin/sh\nset -e\n# Automatically added by dh_installsystemd\nif [ \"$1\" = \"remove\" ]; then\n\t{hook} prerm {pkg}\nfi\n# End automatically added section\n"
        ),
        _ => format!(
            "#!/bin/sh\nset -e\n# Automatically added by dh_installsystemd\nif [ \"$1\" = \"purge\" ]; then\n\t{hook} purge {pkg}\nfi\n# End automatically added section\n"
        ),
    }
}

/// A Release file: the fields, the date, and the SHA256 of every index.
fn release_file(fields: &[(&str, &str)], files: &[(String, Vec<u8>)]) -> String {
    let mut s = String::new();
    for (k, v) in fields {
        let _ = writeln!(s, "{k}: {v}");
    }
    let date = Command::new("date")
        .args(["-u", "-R"])
        .env("LC_ALL", "C")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .replace("+0000", "UTC")
        })
        .unwrap_or_default();
    let _ = writeln!(s, "Date: {date}");
    s.push_str("SHA256:\n");
    for (name, data) in files {
        let _ = writeln!(s, " {:x} {:>16} {name}", Sha256::digest(data), data.len());
    }
    s
}

/// A throw-away GnuPG home holding the testbed's signing keys.
struct Gpg {
    home: PathBuf,
}

impl Gpg {
    fn new(home: &Path) -> Res<Gpg> {
        mkdir(home)?;
        std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("{}: {e}", home.display()))?;
        Ok(Gpg {
            home: home.to_path_buf(),
        })
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("gpg");
        c.arg("--homedir")
            .arg(&self.home)
            .args(["--batch", "--quiet"]);
        c
    }

    /// A new ed25519 signing key for `uid`; returns its fingerprint.
    fn generate(&self, uid: &str) -> Res<String> {
        run(self.cmd().args([
            "--passphrase",
            "",
            "--quick-gen-key",
            uid,
            "ed25519",
            "sign",
            "never",
        ]))?;
        let out = output(self.cmd().args(["--with-colons", "--list-keys", uid]))?;
        out.lines()
            .find_map(|l| {
                l.strip_prefix("fpr:")
                    .map(|r| r.trim_matches(':').to_string())
            })
            .ok_or_else(|| format!("no fingerprint for {uid}"))
    }

    fn export(&self, fpr: &str, armor: bool) -> Res<Vec<u8>> {
        let mut c = self.cmd();
        if armor {
            c.arg("--armor");
        }
        output_bytes(c.args(["--export", fpr]))
    }

    /// Writes Release, Release.gpg and InRelease into `dir`.
    fn sign_release(&self, fpr: &str, dir: &Path, release: &str) -> Res<()> {
        let path = dir.join("Release");
        write(&path, release.as_bytes())?;
        for (flag, name) in [
            ("--clearsign", "InRelease"),
            ("--detach-sign", "Release.gpg"),
        ] {
            let mut c = self.cmd();
            c.args([
                "--yes",
                "--digest-algo",
                "SHA256",
                "--local-user",
                fpr,
                "--armor",
                flag,
                "--output",
            ])
            .arg(dir.join(name))
            .arg(&path);
            run(&mut c)?;
        }
        Ok(())
    }

    fn stop(&self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(&self.home)
            .args(["--kill", "all"])
            .status();
    }
}

/// A testbed CA, a server certificate for every host name the repository server answers
/// (`server.crt`, `server.key`), and one of each container registry's own
/// (`NAME.crt`, `NAME.key`: `testbed::registries`), all signed by that CA, which hosts
/// trust.
fn tls(keys: &Path) -> Res<()> {
    let ca_key = keys.join("ca.key");
    let ca = keys.join("ca.crt");
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "3650",
        ])
        .args(["-subj", "/O=testbed/CN=testbed repository CA", "-keyout"])
        .arg(&ca_key)
        .arg("-out")
        .arg(&ca))?;
    server_certificate(keys, "server", SERVED_HOSTS)?;
    for r in testbed::registries::REGISTRIES {
        server_certificate(keys, r.host, &[r.host])?;
    }
    Ok(())
}

/// `keys/STEM.crt` and `keys/STEM.key`: a server certificate for `names` (the first is
/// its subject's CN), signed by the CA in `keys`.
fn server_certificate(keys: &Path, stem: &str, names: &[&str]) -> Res<()> {
    let key = keys.join(format!("{stem}.key"));
    let csr = keys.join(format!("{stem}.csr"));
    run(Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-subj", &format!("/O=testbed/CN={}", names[0]), "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&csr))?;
    let ext = keys.join(format!("{stem}.ext"));
    let san: Vec<String> = names.iter().map(|h| format!("DNS:{h}")).collect();
    write(
        &ext,
        format!(
            "subjectAltName={}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
            san.join(",")
        )
        .as_bytes(),
    )?;
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "3650", "-in"])
        .arg(&csr)
        .arg("-CA")
        .arg(keys.join("ca.crt"))
        .arg("-CAkey")
        .arg(keys.join("ca.key"))
        .args(["-CAcreateserial", "-extfile"])
        .arg(&ext)
        .arg("-out")
        .arg(keys.join(format!("{stem}.crt"))))?;
    Ok(())
}

fn run(c: &mut Command) -> Res<()> {
    output(c).map(|_| ())
}

fn output(c: &mut Command) -> Res<String> {
    output_bytes(c).map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn output_bytes(c: &mut Command) -> Res<Vec<u8>> {
    let out = c.output().map_err(|e| format!("{c:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{c:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out.stdout)
}

fn mkdir(p: &Path) -> Res<()> {
    std::fs::create_dir_all(p).map_err(|e| format!("{}: {e}", p.display()))
}

fn write(p: &Path, data: &[u8]) -> Res<()> {
    if let Some(d) = p.parent() {
        mkdir(d)?;
    }
    std::fs::write(p, data).map_err(|e| format!("{}: {e}", p.display()))
}

const CONTAINERD_SERVICE: &str = "[Unit]
Description=containerd container runtime
Documentation=https://containerd.io
After=network.target local-fs.target

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/bin/containerd
Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
";

const DOCKER_SERVICE: &str = "[Unit]
Description=Docker Application Container Engine
Documentation=https://docs.docker.com
After=network-online.target docker.socket firewalld.service containerd.service time-set.target
Wants=network-online.target containerd.service
Requires=docker.socket

[Service]
Type=notify
ExecStart=/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock
ExecReload=/bin/kill -s HUP $MAINPID
TimeoutStartSec=0
RestartSec=2
Restart=always
StartLimitBurst=3
StartLimitInterval=60s
Delegate=yes
KillMode=process
OOMScoreAdjust=-500

[Install]
WantedBy=multi-user.target
";

const DOCKER_SOCKET: &str = "[Unit]
Description=Docker Socket for the API

[Socket]
ListenStream=/run/docker.sock
SocketMode=0660
SocketUser=root
SocketGroup=docker

[Install]
WantedBy=sockets.target
";

const KUBELET_SERVICE: &str = "[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
";

const KUBEADM_DROPIN: &str = "# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment=\"KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf\"
Environment=\"KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml\"
# This is a file that \"kubeadm init\" and \"kubeadm join\" generates at runtime, populating the KUBELET_KUBEADM_ARGS variable dynamically
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
# This is a file that the user can use for overrides of the kubelet args as a last resort. Preferably, the user should use
# the .NodeRegistration.KubeletExtraArgs object in the configuration files instead. KUBELET_EXTRA_ARGS should be sourced from this file.
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
";
