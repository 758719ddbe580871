//! The internet as a testbed host sees it: nothing, except the few URLs the procedure
//! downloads (the pkgs.k8s.io signing key and Calico's manifest), served from memory.
//! `curl` and `gpg --dearmor` live here because they only ever handle those.

use std::io::{Read, Write};
use std::path::Path;

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::common::{self, Ctx};
use testbed::layout;

use super::catalog;

/// Calico releases whose manifests the simulated GitHub serves: (minor, newest patch).
pub const CALICO_RELEASES: &[(u32, u32)] = &[(29, 6), (30, 4), (31, 2), (32, 0)];

/// Base URLs of package mirrors the host manager configured (one per line in
/// `ctl/mirrors`), in addition to any testbed peer.
fn mirrors() -> Vec<String> {
    std::fs::read_to_string(common::ctl_path("mirrors"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim().trim_end_matches('/').to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Splits "https://host:port/path" into (host, path).
pub fn split_url(url: &str) -> Option<(String, String)> {
    let rest = url.split_once("://")?.1;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let host = hostport.rsplit_once('@').map(|x| x.1).unwrap_or(hostport);
    let host = host.split(':').next().unwrap_or(host);
    Some((host.to_string(), path.to_string()))
}

/// Whether `host` answers in the testbed (pkgs.k8s.io, GitHub's raw host, peers,
/// configured mirrors); anything else fails to resolve.
pub fn host_known(host: &str) -> bool {
    if is_local(host) {
        return true;
    }
    public_resolves(host) && (host == "pkgs.k8s.io" || host == "raw.githubusercontent.com")
}

/// A testbed peer or a configured mirror: on the testbed's own network.
pub fn is_local(host: &str) -> bool {
    let cfg = Ctx::load("curl").config;
    cfg.peers.iter().any(|p| p == host)
        || mirrors()
            .iter()
            .any(|m| split_url(m).is_some_and(|(h, _)| h == host))
}

/// Whether a public name can resolve at all: not on an air-gapped host, where every
/// attempt is appended to ctl `public-lookups` for the test to see.
pub fn public_resolves(host: &str) -> bool {
    if !common::ctl_path(layout::ctl::AIR_GAPPED).exists() {
        return true;
    }
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(common::ctl_path(layout::ctl::PUBLIC_LOOKUPS))
    {
        let _ = writeln!(f, "{host}");
    }
    false
}

/// If `url` names a pkgs.k8s.io repository (or a mirror of one), its minor and base.
/// Accepts `<base>/v1.N/deb/<rest>` where base ends in `/core:/stable:` or is a mirror.
pub fn k8s_repo_path(url: &str) -> Option<(u32, String, String)> {
    let i = url.find("/v1.")?;
    let base = &url[..i];
    let after = &url[i + 4..];
    let (minor, rest) = after.split_once('/')?;
    let minor: u32 = minor.parse().ok()?;
    let rest = rest.strip_prefix("deb")?;
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let (host, _) = split_url(base)?;
    let cfg = Ctx::load("curl").config;
    let ok = (host == "pkgs.k8s.io" && base.ends_with("/core:/stable:"))
        || mirrors().iter().any(|m| m == base)
        || (cfg.peers.contains(&host) && base.ends_with("/core:/stable:"));
    ok.then(|| (minor, base.to_string(), rest.to_string()))
}

/// The binary (dearmored) form of the pkgs.k8s.io key: a deterministic fake OpenPGP
/// public-key packet that names the key ID, so apt can recognise it.
pub fn key_binary() -> Vec<u8> {
    let mut v = vec![0x99, 0x01, 0x0d, 0x04];
    v.extend_from_slice(
        format!(
            "testbed-openpgp-key {} isv:kubernetes OBS Project <isv:kubernetes@build.opensuse.org>",
            catalog::K8S_KEY_ID
        )
        .as_bytes(),
    );
    let mut h = Sha256::digest(b"pkgs.k8s.io").to_vec();
    while v.len() < 269 {
        v.extend_from_slice(&h);
        h = Sha256::digest(&h).to_vec();
    }
    v.truncate(269);
    v
}

/// Whether keyring bytes (binary, or armored in a .asc file) hold the pkgs.k8s.io key.
pub fn keyring_has_key(bytes: &[u8]) -> bool {
    let bin = if bytes.starts_with(b"-----BEGIN PGP") {
        match dearmor(bytes) {
            Some(b) => b,
            None => return false,
        }
    } else {
        bytes.to_vec()
    };
    bin.first() == Some(&0x99)
        && bin
            .windows(catalog::K8S_KEY_ID.len())
            .any(|w| w == catalog::K8S_KEY_ID.as_bytes())
}

/// OpenPGP's CRC-24 of the armor checksum line.
fn crc24(data: &[u8]) -> u32 {
    let mut crc: u32 = 0xB704CE;
    for &b in data {
        crc ^= (b as u32) << 16;
        for _ in 0..8 {
            crc <<= 1;
            if crc & 0x1000000 != 0 {
                crc ^= 0x1864CFB;
            }
        }
    }
    crc & 0xFFFFFF
}

/// ASCII armor of `data` as a public key block.
pub fn armor(data: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let body = b64.encode(data);
    let mut s = String::from("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n");
    for chunk in body.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).unwrap());
        s.push('\n');
    }
    let crc = crc24(data).to_be_bytes();
    s.push_str(&format!("={}\n", b64.encode(&crc[1..])));
    s.push_str("-----END PGP PUBLIC KEY BLOCK-----\n");
    s
}

/// What `gpg --dearmor` does: the base64 body of an armored block, decoded.
pub fn dearmor(input: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(input).ok()?;
    let start = text.find("-----BEGIN PGP ")?;
    let text = &text[start..];
    let mut lines = text.lines().skip(1);
    let mut body = String::new();
    // Armor headers end at the first empty line.
    for l in lines.by_ref() {
        if l.trim().is_empty() {
            break;
        }
        if !l.contains(':') {
            body.push_str(l.trim());
            break;
        }
    }
    let mut ended = false;
    for l in lines {
        let l = l.trim();
        if l.starts_with("-----END PGP ") {
            ended = true;
            break;
        }
        if l.starts_with('=') {
            continue;
        }
        body.push_str(l);
    }
    if !ended {
        return None;
    }
    let bin = base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .ok()?;
    (!bin.is_empty()).then_some(bin)
}

pub fn calico_manifest(version: &str) -> String {
    format!(
        r#"---
# Source: calico/templates/calico-kube-controllers.yaml
# This manifest creates a Pod Disruption Budget for Controller to allow K8s Cluster Autoscaler to evict

apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: calico-kube-controllers
  namespace: kube-system
  labels:
    k8s-app: calico-kube-controllers
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      k8s-app: calico-kube-controllers
---
# Source: calico/templates/calico-kube-controllers.yaml
apiVersion: v1
kind: ServiceAccount
metadata:
  name: calico-kube-controllers
  namespace: kube-system
---
# Source: calico/templates/calico-node.yaml
apiVersion: v1
kind: ServiceAccount
metadata:
  name: calico-node
  namespace: kube-system
---
# Source: calico/templates/calico-config.yaml
# This ConfigMap is used to configure a self-hosted Calico installation.
kind: ConfigMap
apiVersion: v1
metadata:
  name: calico-config
  namespace: kube-system
data:
  typha_service_name: "none"
  calico_backend: "bird"
  veth_mtu: "0"
  cni_network_config: |-
    {{
      "name": "k8s-pod-network",
      "cniVersion": "0.3.1",
      "plugins": [
        {{
          "type": "calico",
          "log_level": "info",
          "datastore_type": "kubernetes",
          "nodename": "__KUBERNETES_NODE_NAME__",
          "mtu": __CNI_MTU__,
          "ipam": {{
              "type": "calico-ipam"
          }},
          "policy": {{
              "type": "k8s"
          }},
          "kubernetes": {{
              "kubeconfig": "__KUBECONFIG_FILEPATH__"
          }}
        }},
        {{
          "type": "portmap",
          "snat": true,
          "capabilities": {{"portMappings": true}}
        }}
      ]
    }}
---
# Source: calico/templates/calico-node.yaml
# This manifest installs the calico-node container, as well
# as the CNI plugins and network config on
# each master and worker node in a Kubernetes cluster.
kind: DaemonSet
apiVersion: apps/v1
metadata:
  name: calico-node
  namespace: kube-system
  labels:
    k8s-app: calico-node
  annotations:
    projectcalico.org/release: {version}
spec:
  selector:
    matchLabels:
      k8s-app: calico-node
  updateStrategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 1
  template:
    metadata:
      labels:
        k8s-app: calico-node
    spec:
      nodeSelector:
        kubernetes.io/os: linux
      hostNetwork: true
      tolerations:
        # Make sure calico-node gets scheduled on all nodes.
        - effect: NoSchedule
          operator: Exists
        # Mark the pod as a critical add-on for rescheduling.
        - key: CriticalAddonsOnly
          operator: Exists
        - effect: NoExecute
          operator: Exists
      serviceAccountName: calico-node
      terminationGracePeriodSeconds: 0
      priorityClassName: system-node-critical
      initContainers:
        - name: install-cni
          image: docker.io/calico/cni:{version}
          imagePullPolicy: IfNotPresent
          command: ["/opt/cni/bin/install"]
          volumeMounts:
            - mountPath: /host/opt/cni/bin
              name: cni-bin-dir
            - mountPath: /host/etc/cni/net.d
              name: cni-net-dir
      containers:
        - name: calico-node
          image: docker.io/calico/node:{version}
          imagePullPolicy: IfNotPresent
          env:
            - name: DATASTORE_TYPE
              value: "kubernetes"
            - name: CLUSTER_TYPE
              value: "k8s,bgp"
            - name: IP
              value: "autodetect"
            # Enable IPIP
            - name: CALICO_IPV4POOL_IPIP
              value: "Always"
            # Enable or Disable VXLAN on the default IP pool.
            - name: CALICO_IPV4POOL_VXLAN
              value: "Never"
            # Enable or Disable VXLAN on the default IPv6 IP pool.
            - name: CALICO_IPV6POOL_VXLAN
              value: "Never"
            # The default IPv4 pool to create on startup if none exists. Pod IPs will be
            # chosen from this range. Changing this value after installation will have
            # no effect. This should fall within `--cluster-cidr`.
            # - name: CALICO_IPV4POOL_CIDR
            #   value: "192.168.0.0/16"
            - name: FELIX_IPV6SUPPORT
              value: "false"
          securityContext:
            privileged: true
          resources:
            requests:
              cpu: 250m
      volumes:
        - name: cni-bin-dir
          hostPath:
            path: /opt/cni/bin
            type: DirectoryOrCreate
        - name: cni-net-dir
          hostPath:
            path: /etc/cni/net.d
---
# Source: calico/templates/calico-kube-controllers.yaml
# See https://github.com/projectcalico/kube-controllers
apiVersion: apps/v1
kind: Deployment
metadata:
  name: calico-kube-controllers
  namespace: kube-system
  labels:
    k8s-app: calico-kube-controllers
spec:
  # The controllers can only have a single active instance.
  replicas: 1
  selector:
    matchLabels:
      k8s-app: calico-kube-controllers
  strategy:
    type: Recreate
  template:
    metadata:
      name: calico-kube-controllers
      namespace: kube-system
      labels:
        k8s-app: calico-kube-controllers
    spec:
      nodeSelector:
        kubernetes.io/os: linux
      tolerations:
        # Mark the pod as a critical add-on for rescheduling.
        - key: CriticalAddonsOnly
          operator: Exists
        - key: node-role.kubernetes.io/master
          effect: NoSchedule
        - key: node-role.kubernetes.io/control-plane
          effect: NoSchedule
      serviceAccountName: calico-kube-controllers
      priorityClassName: system-cluster-critical
      containers:
        - name: calico-kube-controllers
          image: docker.io/calico/kube-controllers:{version}
          imagePullPolicy: IfNotPresent
          env:
            # Choose which controllers to run.
            - name: ENABLED_CONTROLLERS
              value: node,loadbalancer
            - name: DATASTORE_TYPE
              value: kubernetes
"#
    )
}

/// The body served for a path on a known host; None = 404.
fn serve(host: &str, url: &str, path: &str) -> Option<Vec<u8>> {
    if let Some((minor, _, rest)) = k8s_repo_path(url) {
        if catalog::newest_patch(minor).is_some() && rest == "Release.key" {
            return Some(armor(&key_binary()).into_bytes());
        }
        return None;
    }
    if host == "raw.githubusercontent.com" {
        let p = path.strip_prefix("/projectcalico/calico/v")?;
        let (ver, file) = p.split_once('/')?;
        if file != "manifests/calico.yaml" {
            return None;
        }
        let parts: Vec<u32> = ver.split('.').filter_map(|x| x.parse().ok()).collect();
        if parts.len() != 3 || parts[0] != 3 {
            return None;
        }
        let known = CALICO_RELEASES
            .iter()
            .any(|(m, newest)| *m == parts[1] && parts[2] <= *newest);
        return known.then(|| calico_manifest(&format!("v{ver}")).into_bytes());
    }
    None
}

/// Fetches `url` the way curl on an offline testbed host would: the few URLs the
/// procedure needs are served from memory, anything else fails. On failure returns
/// curl's exit code and message (`curl: (6) Could not resolve host: example.com`);
/// unknown paths on known hosts fail like `curl -f` (`curl: (22) ... 404`).
pub fn fetch_url(url: &str) -> Result<Vec<u8>, (i32, String)> {
    let Some((host, path)) = split_url(url) else {
        return Err((
            3,
            "curl: (3) URL rejected: No host part in the URL".to_string(),
        ));
    };
    let scheme = url.split("://").next().unwrap_or("");
    if !matches!(scheme, "http" | "https") {
        return Err((1, format!("curl: (1) Protocol \"{scheme}\" not supported")));
    }
    if !host_known(&host) {
        return Err((6, format!("curl: (6) Could not resolve host: {host}")));
    }
    serve(&host, url, &path).ok_or_else(|| {
        (
            22,
            "curl: (22) The requested URL returned error: 404".to_string(),
        )
    })
}

const NOT_FOUND_PAGE: &str = "404: Not Found";

/// The protocols curl is built with on Ubuntu (the ones `--proto` can name).
const CURL_PROTOCOLS: &[&str] = &[
    "dict", "file", "ftp", "ftps", "gopher", "gophers", "http", "https", "imap", "imaps", "ldap",
    "ldaps", "mqtt", "pop3", "pop3s", "rtmp", "rtsp", "scp", "sftp", "smb", "smbs", "smtp",
    "smtps", "telnet", "tftp",
];

/// `--proto LIST` applied to `current`, as curl's docs say: comma-separated protocols,
/// each optionally prefixed `+` (add, the default), `-` (remove) or `=` (exactly these,
/// from then on); `all` names every protocol.
fn allowed_protocols(current: &[String], list: &str) -> Vec<String> {
    let mut allowed: Vec<String> = current.to_vec();
    for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (op, name) = match item.chars().next() {
            Some(c @ ('+' | '-' | '=')) => (c, &item[1..]),
            _ => ('+', item),
        };
        let names: Vec<String> = if name == "all" {
            CURL_PROTOCOLS.iter().map(|p| p.to_string()).collect()
        } else {
            vec![name.to_ascii_lowercase()]
        };
        match op {
            '=' => allowed = names,
            '-' => allowed.retain(|p| !names.contains(p)),
            _ => {
                for n in names {
                    if !allowed.contains(&n) {
                        allowed.push(n);
                    }
                }
            }
        }
    }
    allowed
}

/// `curl [-fsSL] [--proto LIST] [--proto-redir LIST] [-o FILE] URL`.
pub fn curl(ctx: &mut Ctx, args: &[String]) -> i32 {
    let mut protocols: Vec<String> = CURL_PROTOCOLS.iter().map(|p| p.to_string()).collect();
    let mut fail = false;
    let mut silent = false;
    let mut show_error = false;
    let mut output: Option<String> = None;
    let mut urls = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "--fail" | "--fail-with-body" => fail = true,
            "--silent" => silent = true,
            "--show-error" => show_error = true,
            "--location" | "--compressed" | "--insecure" | "-k" => {}
            "--output" => {
                i += 1;
                output = args.get(i).cloned();
            }
            "--proto" => {
                i += 1;
                protocols = allowed_protocols(&protocols, args.get(i).map_or("", |a| a.as_str()));
            }
            // Redirects are not modeled (no URL here redirects): the value is taken.
            "--proto-redir" => i += 1,
            "--retry" | "--connect-timeout" | "--max-time" | "-m" | "--header" | "-H"
            | "--retry-delay" | "--retry-max-time" | "-A" | "--user-agent" | "-w"
            | "--write-out" => {
                i += 1;
            }
            s if s.starts_with("--") => {}
            s if s.starts_with('-') && s.len() > 1 => {
                let flags: Vec<char> = s[1..].chars().collect();
                for (k, c) in flags.iter().enumerate() {
                    match c {
                        'f' => fail = true,
                        's' => silent = true,
                        'S' => show_error = true,
                        'L' | 'k' | 'v' | 'q' => {}
                        'o' => {
                            let rest: String = flags[k + 1..].iter().collect();
                            if rest.is_empty() {
                                i += 1;
                                output = args.get(i).cloned();
                            } else {
                                output = Some(rest);
                            }
                            break;
                        }
                        _ => {}
                    }
                }
            }
            s => urls.push(s.to_string()),
        }
        i += 1;
    }
    let report = |msg: &str| {
        if !silent || show_error {
            eprintln!("{msg}");
        }
    };
    let Some(url) = urls.first() else {
        eprintln!("curl: no URL specified!\ncurl: try 'curl --help' or 'curl --manual' for more information");
        return 2;
    };
    let scheme = url
        .split_once("://")
        .map_or("http", |(s, _)| s)
        .to_ascii_lowercase();
    if !protocols.contains(&scheme) {
        // lib/url.c findprotocol(): the wording changed in curl 7.86.
        let why = if ctx.config.os == "ubuntu-22.04" {
            "not supported or disabled in libcurl"
        } else {
            "disabled"
        };
        report(&format!("curl: (1) Protocol \"{scheme}\" {why}"));
        return 1;
    }
    ctx.take_time(0.3);
    let body = match fetch_url(url) {
        Ok(b) => b,
        Err((22, msg)) => {
            if fail {
                report(&msg);
                return 22;
            }
            NOT_FOUND_PAGE.as_bytes().to_vec()
        }
        Err((code, msg)) => {
            report(&msg);
            return code;
        }
    };
    match output.as_deref() {
        None | Some("-") => {
            let _ = std::io::stdout().write_all(&body);
            0
        }
        Some(f) => {
            let before = std::fs::read(f).ok();
            match std::fs::write(f, &body) {
                Ok(()) => {
                    if before.as_deref() != Some(&body[..]) {
                        ctx.changed();
                    }
                    0
                }
                Err(e) => {
                    report(&format!(
                        "curl: (23) Failure writing output to destination, passed {} returned 0",
                        body.len()
                    ));
                    let _ = e;
                    23
                }
            }
        }
    }
}

/// `gpg --dearmor [--yes] [--batch] [-o FILE] [INPUT]`.
pub fn gpg(ctx: &mut Ctx, args: &[String]) -> i32 {
    let mut dearmor_mode = false;
    let mut yes = false;
    let mut output: Option<String> = None;
    let mut inputs = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "--dearmor" | "--dearmour" => dearmor_mode = true,
            "--yes" => yes = true,
            "--batch" | "--no-tty" | "--quiet" | "-q" => {}
            "-o" | "--output" => {
                i += 1;
                output = args.get(i).cloned();
            }
            s if s.starts_with("--output=") => output = Some(s[9..].to_string()),
            "--version" => {
                println!("gpg (GnuPG) 2.4.4\nlibgcrypt 1.10.3");
                return 0;
            }
            s if s.starts_with('-') => {
                eprintln!("gpg: only --dearmor is modeled in the testbed (got {s})");
                return 2;
            }
            s => inputs.push(s.to_string()),
        }
        i += 1;
    }
    if !dearmor_mode {
        eprintln!("gpg: Go ahead and type your message ...");
        return 2;
    }
    // Every gpg run makes sure its home directory exists, and says so the first time.
    if let Some(home) = std::env::var_os("GNUPGHOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".gnupg")))
    {
        if !home.exists() && std::fs::create_dir_all(&home).is_ok() {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700));
            eprintln!("gpg: directory '{}' created", home.display());
            ctx.changed();
        }
    }
    let input = match inputs.first() {
        Some(f) if f != "-" => match std::fs::read(f) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("gpg: can't open '{f}': {}", os_err(&e));
                eprintln!("gpg: dearmoring failed: {}", os_err(&e));
                return 2;
            }
        },
        _ => {
            let mut b = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut b);
            b
        }
    };
    match output.as_deref() {
        None | Some("-") => {}
        Some(f) => {
            if Path::new(f).exists() && !yes {
                eprintln!("gpg: cannot open '/dev/tty': No such device or address");
                return 2;
            }
        }
    }
    let Some(bin) = dearmor(&input) else {
        eprintln!("gpg: no valid OpenPGP data found.");
        eprintln!("gpg: dearmoring failed: Unknown system error");
        return 2;
    };
    match output.as_deref() {
        None | Some("-") => {
            let _ = std::io::stdout().write_all(&bin);
            0
        }
        Some(f) => {
            let before = std::fs::read(f).ok();
            match std::fs::write(f, &bin) {
                Ok(()) => {
                    if before.as_deref() != Some(&bin[..]) {
                        ctx.changed();
                    }
                    0
                }
                Err(e) => {
                    eprintln!("gpg: can't create '{f}': {}", os_err(&e));
                    eprintln!("gpg: dearmoring failed: {}", os_err(&e));
                    2
                }
            }
        }
    }
}

/// "No such file or directory" without Rust's " (os error 2)".
pub fn os_err(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proto_lists_follow_curls_manual() {
        let all: Vec<String> = CURL_PROTOCOLS.iter().map(|p| p.to_string()).collect();
        assert_eq!(allowed_protocols(&all, "=https"), ["https"]);
        assert_eq!(allowed_protocols(&all, "=http,https"), ["http", "https"]);
        let no_ftp = allowed_protocols(&all, "-ftp");
        assert!(!no_ftp.contains(&"ftp".to_string()) && no_ftp.contains(&"http".to_string()));
        assert_eq!(allowed_protocols(&all, "-all,+https"), ["https"]);
    }

    #[test]
    fn armor_round_trip_is_a_keyring() {
        let a = armor(&key_binary());
        assert!(a.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));
        let bin = dearmor(a.as_bytes()).unwrap();
        assert_eq!(bin, key_binary());
        assert!(keyring_has_key(&bin));
        assert!(keyring_has_key(a.as_bytes()));
        assert!(dearmor(b"404: Not Found").is_none());
        assert!(!keyring_has_key(b"404: Not Found"));
    }

    #[test]
    fn url_parts() {
        assert_eq!(
            split_url("https://pkgs.k8s.io/core:/stable:/v1.34/deb/Release.key"),
            Some((
                "pkgs.k8s.io".into(),
                "/core:/stable:/v1.34/deb/Release.key".into()
            ))
        );
        assert_eq!(
            split_url("http://example.com"),
            Some(("example.com".into(), "/".into()))
        );
    }
}
