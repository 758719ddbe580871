//! The syntax rules of single values: Kubernetes names, labels and taints (the rules
//! the API server applies, reference §7), versions, addresses, subnets and URLs.
//!
//! Every check is a pure function from text to a value or a [`Broken`] that says what is
//! wrong and, when there is an obvious fix, how to fix it. Checking here, before any host
//! is touched, beats learning it from `kubectl label` halfway through a run.

use std::net::IpAddr;

use ipnet::IpNet;
use semver::Version;

use super::versions;
use super::Taint;

/// What is wrong with a value, and the fix when there is an obvious one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Broken {
    pub message: String,
    pub help: Option<String>,
    /// The written value holds a secret: the problem is shown without the source snippet
    /// (the message itself shows the value redacted).
    pub secret: bool,
}

impl Broken {
    fn new(message: impl Into<String>) -> Self {
        Broken {
            message: message.into(),
            help: None,
            secret: false,
        }
    }

    fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    pub(crate) fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// `help` unless the rule already said how to fix it.
    pub(crate) fn or_help(self, help: impl Into<String>) -> Self {
        match self.help {
            Some(_) => self,
            None => self.help(help),
        }
    }
}

type Rule<T> = Result<T, Broken>;

/// The label-name regex of Kubernetes: `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A DNS-1123 subdomain: lower-case labels of `[a-z0-9]([-a-z0-9]*[a-z0-9])?` joined by
/// dots, at most 253 characters.
pub(crate) fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253
        && !s.is_empty()
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
                && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

/// A node name: a DNS-1123 subdomain, kept to 63 characters because kubeadm also uses it
/// as the host name part of certificates and the kubelet as `--hostname-override`.
pub(crate) fn node_name(s: &str) -> Rule<()> {
    if s.len() > 63 {
        return Err(Broken::new(format!(
            "node name `{s}` is {} characters long; at most 63 are allowed",
            s.len()
        )));
    }
    if is_dns1123_subdomain(s) {
        return Ok(());
    }
    let broken = Broken::new(format!(
        "`{s}` is not a valid node name: use lower-case letters, digits, `-` and `.`, \
         starting and ending with a letter or digit"
    ));
    let lower = s.to_ascii_lowercase().replace('_', "-");
    Err(if is_dns1123_subdomain(&lower) {
        broken.help(format!("did you mean `{lower}`?"))
    } else {
        broken
    })
}

/// A cluster name: the same rule as node names.
pub(crate) fn cluster_name(s: &str) -> Rule<()> {
    node_name(s).map_err(|b| Broken {
        message: b.message.replace("node name", "cluster name"),
        ..b
    })
}

/// A label or taint key: `[prefix/]name`, prefix a DNS-1123 subdomain, name <= 63.
pub(crate) fn qualified_name(key: &str) -> Rule<()> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if !is_dns1123_subdomain(prefix) {
            return Err(Broken::new(format!(
                "the prefix `{prefix}` of `{key}` must be a lower-case DNS subdomain \
                 (at most 253 characters, like `example.com`)"
            )));
        }
    }
    if name.is_empty() {
        return Err(Broken::new(format!("`{key}` has an empty name part")));
    }
    if name.len() > 63 {
        return Err(Broken::new(format!(
            "the name part of `{key}` is {} characters long; at most 63 are allowed",
            name.len()
        )));
    }
    if !is_label_name(name) {
        return Err(Broken::new(format!(
            "`{key}` is not a valid key: the name part may contain letters, digits, `-`, `_` \
             and `.`, and must start and end with a letter or digit{}",
            if name.contains('/') {
                " (only one `/` is allowed)"
            } else {
                ""
            }
        )));
    }
    Ok(())
}

/// A label value (also a taint value): empty, or <= 63 characters of the label-name regex.
pub(crate) fn label_value(value: &str) -> Rule<()> {
    if value.len() > 63 {
        return Err(Broken::new(format!(
            "the value `{value}` is {} characters long; at most 63 are allowed",
            value.len()
        )));
    }
    if !value.is_empty() && !is_label_name(value) {
        return Err(Broken::new(format!(
            "`{value}` is not a valid value: use letters, digits, `-`, `_` and `.`, starting \
             and ending with a letter or digit (or leave it empty)"
        )));
    }
    Ok(())
}

/// Whether a key lives in the namespaces Kubernetes reserves for itself.
fn reserved_namespace(key: &str) -> bool {
    let Some((prefix, _)) = key.split_once('/') else {
        return false;
    };
    ["kubernetes.io", "k8s.io"]
        .iter()
        .any(|ns| prefix == *ns || prefix.ends_with(&format!(".{ns}")))
}

/// Labels the inventory may not set although their syntax is valid.
///
/// NodeRestriction lets a kubelet set only a few `kubernetes.io`/`k8s.io` labels, and the
/// kubelet refuses unknown ones in `--node-labels`. The tool applies labels with admin
/// credentials after the join, which can set more, but the kubelet-managed ones would be
/// overwritten by the kubelet and everything else in those namespaces belongs to
/// Kubernetes components. Allowed: `node-role.kubernetes.io/*` (roles; the kubelet may not
/// set them itself, which is why they are applied after the join),
/// `node-restriction.kubernetes.io/*` (meant exactly for admin-set labels),
/// `node.kubernetes.io/*`, `kubelet.kubernetes.io/*` and the topology/instance-type keys.
pub(crate) fn reserved_label(key: &str) -> Option<Broken> {
    if !reserved_namespace(key) {
        return None;
    }
    const KUBELET_OWNED: [&str; 5] = [
        "kubernetes.io/hostname",
        "kubernetes.io/os",
        "kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
    ];
    const ALLOWED_KEYS: [&str; 5] = [
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "beta.kubernetes.io/instance-type",
    ];
    const ALLOWED_PREFIXES: [&str; 4] = [
        "node-role.kubernetes.io/",
        "node-restriction.kubernetes.io/",
        "node.kubernetes.io/",
        "kubelet.kubernetes.io/",
    ];
    if key == "node-role.kubernetes.io/master" {
        return Some(
            Broken::new("the `master` role label is gone since Kubernetes 1.24")
                .help("use `node-role.kubernetes.io/control-plane` (kubeadm sets it itself)"),
        );
    }
    if KUBELET_OWNED.contains(&key) {
        return Some(
            Broken::new(format!(
                "`{key}` is set by the kubelet from the host itself and would be overwritten"
            ))
            .help("pick a key of your own, e.g. `example.com/...`"),
        );
    }
    if ALLOWED_KEYS.contains(&key) || ALLOWED_PREFIXES.iter().any(|p| key.starts_with(p)) {
        return None;
    }
    Some(
        Broken::new(format!(
            "`{key}` is in a namespace reserved for Kubernetes (kubernetes.io, k8s.io): the \
             kubelet refuses it and NodeRestriction forbids it"
        ))
        .help(
            "use a prefix of your own (e.g. `example.com/role`), or one of \
             `node-role.kubernetes.io/`, `node-restriction.kubernetes.io/`, \
             `node.kubernetes.io/`, `topology.kubernetes.io/zone|region`",
        ),
    )
}

/// The taint effects Kubernetes knows.
pub(crate) const EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// A taint in kubectl's syntax: `key[=value]:Effect`.
pub(crate) fn taint(s: &str) -> Rule<Taint> {
    let form = "a taint is written `key[=value]:Effect`, e.g. `dedicated=db:NoSchedule`";
    let Some((kv, effect)) = s.rsplit_once(':') else {
        return Err(Broken::new(format!("`{s}` has no effect")).help(format!(
            "{form}; the effect is one of {}",
            EFFECTS.join(", ")
        )));
    };
    if !EFFECTS.contains(&effect) {
        let broken = Broken::new(format!(
            "`{effect}` is not a taint effect; use one of {}",
            EFFECTS.join(", ")
        ));
        return Err(match super::tree::suggest(effect, &EFFECTS) {
            Some(e) => broken.help(format!("did you mean `{e}`?")),
            None => broken.help(form),
        });
    }
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (kv, None),
    };
    qualified_name(key).map_err(|b| b.help(form))?;
    if let Some(v) = value {
        label_value(v)?;
    }
    Ok(Taint {
        key: key.to_string(),
        value: value.map(str::to_string),
        effect: effect.to_string(),
    })
}

/// Taints the inventory may not set: the node lifecycle controller and the kubelet own
/// them, and the `master` one no longer exists.
pub(crate) fn reserved_taint(key: &str) -> Option<Broken> {
    const CONTROLLER_OWNED: [&str; 8] = [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
        "node.kubernetes.io/unschedulable",
        "node.kubernetes.io/memory-pressure",
        "node.kubernetes.io/disk-pressure",
        "node.kubernetes.io/pid-pressure",
        "node.kubernetes.io/network-unavailable",
        "node.cloudprovider.kubernetes.io/uninitialized",
    ];
    if key == "node-role.kubernetes.io/master" {
        return Some(
            Broken::new("the `master` taint is gone since Kubernetes 1.25").help(
                "the control-plane taint is `node-role.kubernetes.io/control-plane:NoSchedule`",
            ),
        );
    }
    if CONTROLLER_OWNED.contains(&key) {
        return Some(Broken::new(format!(
            "`{key}` is managed by Kubernetes itself (node lifecycle controller / kubelet); \
             setting it by hand fights them"
        )));
    }
    None
}

/// A Kubernetes version: exact `X.Y.Z`, a leading `v` accepted, inside the supported range.
pub(crate) fn kubernetes_version(s: &str) -> Rule<Version> {
    let bare = s.strip_prefix('v').unwrap_or(s);
    let version = match Version::parse(bare) {
        Ok(v) => v,
        Err(_) => {
            let parts: Vec<&str> = bare.split('.').collect();
            let broken = Broken::new(format!(
                "`{s}` is not an exact Kubernetes version like `{}`",
                versions::DEFAULT_KUBERNETES
            ));
            return Err(
                if parts.len() == 2 && parts.iter().all(|p| p.parse::<u64>().is_ok()) {
                    broken.help(format!(
                        "name the patch release, e.g. `{bare}.0`; the packages are pinned to an \
                         exact version so every node gets the same one (and quote it: YAML \
                         reads a plain `1.30` as the number 1.3)"
                    ))
                } else {
                    broken
                },
            );
        }
    };
    versions::check_supported(&version).map_err(Broken::new)?;
    Ok(version)
}

/// A Calico release tag, `vX.Y.Z`.
pub(crate) fn calico_version(s: &str) -> Rule<()> {
    let ok = |t: &str| {
        let parts: Vec<&str> = t.split('.').collect();
        parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
    };
    match s.strip_prefix('v') {
        Some(rest) if ok(rest) => Ok(()),
        None if ok(s) => Err(
            Broken::new(format!("`{s}` is not a Calico release tag (`vX.Y.Z`)"))
                .help(format!("did you mean `v{s}`?")),
        ),
        _ => Err(Broken::new(format!(
            "`{s}` is not a Calico release tag (`vX.Y.Z`, e.g. `{}`)",
            versions::DEFAULT_CALICO
        ))),
    }
}

/// A host name as resolvers accept it (RFC 1123): letters, digits and `-` per label.
fn is_hostname(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        })
}

/// An IP that can be a host's: not unspecified, loopback, multicast or an IPv4-mapped
/// IPv6 address (write the IPv4 address itself). The kubelet refuses the same as a node IP
/// (validateNodeIP), and none of them reaches a particular remote host.
pub(crate) fn host_ip(ip: IpAddr) -> Rule<()> {
    let what = if ip.is_unspecified() {
        "the unspecified address (any address of this machine)"
    } else if ip.is_loopback() {
        "a loopback address (this machine itself)"
    } else if ip.is_multicast() {
        "a multicast address"
    } else if let IpAddr::V6(v6) = ip {
        if let Some(v4) = v6.to_ipv4_mapped() {
            return Err(
                Broken::new(format!("`{ip}` is an IPv4-mapped IPv6 address"))
                    .help(format!("write the IPv4 address itself: `{v4}`")),
            );
        }
        return Ok(());
    } else {
        return Ok(());
    };
    Err(Broken::new(format!(
        "`{ip}` is {what}, not the address of a host"
    )))
}

/// `internalAddress`: an IP address (the node IP), as `host_ip`, and not link-local (the
/// kubelet refuses one: "nodeIP can't be a link-local unicast address").
pub(crate) fn internal_address(s: &str) -> Rule<IpAddr> {
    let ip: IpAddr = s.parse().map_err(|_| {
        Broken::new(format!("`{s}` is not an IP address")).help(
            "the node IP must be an address on one of the host's interfaces, e.g. `10.0.0.10`",
        )
    })?;
    host_ip(ip)?;
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    };
    if link_local {
        return Err(Broken::new(format!(
            "`{ip}` is a link-local address: the kubelet refuses it as a node IP"
        )));
    }
    Ok(ip)
}

/// A host's address: an IP address or a host name.
pub(crate) fn address(s: &str) -> Rule<()> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return host_ip(ip);
    }
    if s.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
        return Err(Broken::new(format!("`{s}` is not a valid IPv4 address")));
    }
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return Err(Broken::new(format!("`{s}` is written with brackets"))
            .help(format!("write the IPv6 address bare: `{inner}`")));
    }
    if let Some((host, port)) = s.rsplit_once(':') {
        if port.parse::<u16>().is_ok() && (is_hostname(host) || host.parse::<IpAddr>().is_ok()) {
            return Err(Broken::new(format!("`{s}` includes a port")).help(format!(
                "write `address: {host}` and set the port with `ssh: {{port: {port}}}`"
            )));
        }
    }
    if is_hostname(s) {
        return Ok(());
    }
    Err(Broken::new(format!(
        "`{s}` is neither an IP address nor a valid host name"
    )))
}

/// `host:port` (IPv6 in brackets: `[fd00::1]:6443`).
pub(crate) fn endpoint(s: &str) -> Rule<(String, u16)> {
    let form = "write it as `host:port`, e.g. `10.0.0.10:6443` or `[fd00::10]:6443`";
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        match rest.split_once("]:") {
            Some((h, p)) => (h, Some(p)),
            None => (rest.trim_end_matches(']'), None),
        }
    } else if s.matches(':').count() > 1 {
        return Err(Broken::new(format!("`{s}` is ambiguous")).help(form));
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let Some(port) = port else {
        return Err(Broken::new(format!("`{s}` has no port"))
            .help(format!("the API server listens on 6443: `{s}:6443`")));
    };
    let port = match port.parse::<u16>() {
        Ok(p) if p > 0 => p,
        _ => {
            return Err(Broken::new(format!("`{port}` is not a port number (1-65535)")).help(form))
        }
    };
    if host.parse::<IpAddr>().is_err() && !is_hostname(host) {
        return Err(Broken::new(format!(
            "`{host}` is neither an IP address nor a valid host name"
        ))
        .help(form));
    }
    Ok((host.to_string(), port))
}

/// A subnet in CIDR notation, with no host bits set.
pub(crate) fn subnet(s: &str) -> Rule<IpNet> {
    if s.contains(',') {
        return Err(Broken::new(format!(
            "`{s}` lists several subnets; dual-stack is not supported yet"
        )));
    }
    let net: IpNet = s.parse().map_err(|_| {
        Broken::new(format!(
            "`{s}` is not a subnet in CIDR notation like `192.168.0.0/16`"
        ))
    })?;
    if net.trunc() != net {
        return Err(Broken::new(format!("`{s}` has host bits set"))
            .help(format!("did you mean `{}`?", net.trunc())));
    }
    Ok(net)
}

/// Why the cluster is IPv4 only, for every IPv6 refusal.
pub(crate) const IPV4_ONLY: &str = "bootstrap sets up IPv4 clusters only (IPv6 and dual-stack \
     are a later feature: kubeadm's preflight needs net.ipv6.conf.default.forwarding=1, the API \
     server refuses a service family other than its address's, and Calico's manifest ships \
     FELIX_IPV6SUPPORT=false)";

fn ipv4_only(net: IpNet) -> Rule<()> {
    match net {
        IpNet::V4(_) => Ok(()),
        IpNet::V6(_) => Err(Broken::new(format!("`{net}` is an IPv6 subnet")).help(IPV4_ONLY)),
    }
}

/// The node mask kube-controller-manager carves out of the pod subnet for each node
/// (--node-cidr-mask-size-ipv4, kubeadm's default).
pub(crate) const NODE_MASK_IPV4: u8 = 24;
/// kubeadm's PodSubnetNodeMaskMaxDiff: the node mask may be at most this many bits longer.
pub(crate) const POD_SUBNET_NODE_MASK_MAX_DIFF: u8 = 16;
/// kubeadm's MaximumBitsForServiceSubnet (the API server's limit too).
pub(crate) const MAX_BITS_FOR_SERVICE_SUBNET: u8 = 20;
/// kubeadm's MinimumAddressesInServiceSubnet.
pub(crate) const MIN_ADDRESSES_IN_SERVICE_SUBNET: u64 = 10;

/// `podSubnet` as kubeadm's ValidatePodSubnetNodeMask checks it (its messages): room for
/// at least one node's /24, and at most 16 bits more than that.
pub(crate) fn pod_subnet(net: IpNet) -> Rule<()> {
    ipv4_only(net)?;
    let (mask, node) = (net.prefix_len(), NODE_MASK_IPV4);
    if mask > node {
        return Err(Broken::new(format!(
            "`{net}`: the size of pod subnet with mask {mask} is smaller than the size of node \
             subnet with mask {node} (kubeadm)"
        ))
        .help(format!(
            "each node gets a /{node} of the pod subnet: use a /{node} or larger, e.g. \
             `192.168.0.0/16`"
        )));
    }
    if node - mask > POD_SUBNET_NODE_MASK_MAX_DIFF {
        return Err(Broken::new(format!(
            "`{net}`: pod subnet mask ({mask}) and node-mask ({node}) difference is greater \
             than {POD_SUBNET_NODE_MASK_MAX_DIFF} (kubeadm)"
        ))
        .help(format!(
            "use a /{} or smaller, e.g. `10.244.0.0/16`",
            node - POD_SUBNET_NODE_MASK_MAX_DIFF
        )));
    }
    Ok(())
}

/// `serviceSubnet` as kubeadm's ValidateServiceSubnetSize and ValidateIPNetFromString check
/// it (their messages): at most 20 bits of addresses, at least 10 addresses.
pub(crate) fn service_subnet(net: IpNet) -> Rule<()> {
    ipv4_only(net)?;
    let bits = net.max_prefix_len();
    let host_bits = bits - net.prefix_len();
    if host_bits > MAX_BITS_FOR_SERVICE_SUBNET {
        return Err(Broken::new(format!(
            "`{net}`: specified service subnet is too large; for {bits}-bit addresses, the mask \
             must be >= {} (kubeadm and the API server)",
            bits - MAX_BITS_FOR_SERVICE_SUBNET
        ))
        .help("the default `10.96.0.0/12` is the largest allowed"));
    }
    let addresses = 1u64 << host_bits;
    if addresses < MIN_ADDRESSES_IN_SERVICE_SUBNET {
        return Err(Broken::new(format!(
            "`{net}`: subnet with {addresses} address(es) is too small, the minimum is \
             {MIN_ADDRESSES_IN_SERVICE_SUBNET} (kubeadm)"
        ))
        .help("use a /28 or larger; the default is `10.96.0.0/12`"));
    }
    Ok(())
}

/// A URL whose content gets root or the cluster's admin (the package repository and its
/// signing key, the Calico manifest, `manifests:`): `https://` with a host, nothing a
/// shell or YAML would mangle, and no credentials. Plain http would let anyone on the
/// network path change what is installed; credentials in the URL would be stored in the
/// cluster's record of applied manifests, the run logs and curl's command line.
pub(crate) fn url(s: &str) -> Rule<()> {
    let Some(rest) = s.strip_prefix("https://") else {
        if s.starts_with("http://") {
            return Err(Broken::new(format!("`{s}` is a plain http:// URL")).help(
                "what it serves gets root on the nodes or is applied with the cluster's admin \
                 credentials, so anyone on the network path could change it: use https://",
            ));
        }
        return Err(Broken::new(format!("`{s}` is not an https:// URL")));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty()
        || s.chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\'' || c == '"')
    {
        return Err(Broken::new(format!(
            "`{}` is not a valid URL",
            without_credentials(s)
        )));
    }
    let what = if authority.contains('@') {
        Some("a user name or password (`user:password@`)".to_string())
    } else {
        secret_query_parameter(s).map(|name| format!("a credential in its query (`{name}=`)"))
    };
    match what {
        None => Ok(()),
        Some(what) => Err(Broken::new(format!(
            "`{}` has {what}",
            without_credentials(s)
        ))
        .help(
            "a credential in a URL ends up in the cluster's record of applied manifests, the \
             run logs and curl's command line: download the file with your credentials and \
             give its path instead (a local manifest is read here and applied from stdin); \
             for cluster.packageRepository use a mirror that needs none in its URL",
        )
        .secret()),
    }
}

/// Query parameters that carry a credential (API tokens, signed-URL signatures).
const SECRET_PARAMETERS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "pwd",
    "key",
    "apikey",
    "api_key",
    "auth",
    "signature",
    "sig",
    "credential",
    "access_token",
    "private_token",
    "session",
];

/// The name of the first query parameter of `url` that carries a credential.
fn secret_query_parameter(url: &str) -> Option<&str> {
    let query = url.split_once('?')?.1.split('#').next().unwrap_or("");
    query
        .split('&')
        .map(|p| p.split('=').next().unwrap_or(""))
        .find(|name| {
            let n = name.to_ascii_lowercase();
            SECRET_PARAMETERS
                .iter()
                .any(|s| n == *s || n.ends_with(&format!("-{s}")) || n.ends_with(&format!("_{s}")))
        })
}

/// `url` as it may be shown: user information and the values of credential parameters
/// replaced by `<redacted>`.
pub(crate) fn without_credentials(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("<redacted>@{host}"),
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        None => tail.to_string(),
        Some((path, query)) => {
            let (query, fragment) = match query.split_once('#') {
                Some((q, f)) => (q, format!("#{f}")),
                None => (query, String::new()),
            };
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((name, _)) if secret_query_parameter(&format!("?{name}")).is_some() => {
                        format!("{name}=<redacted>")
                    }
                    _ => p.to_string(),
                })
                .collect();
            format!("{path}?{}{fragment}", params.join("&"))
        }
    };
    if scheme.is_empty() {
        format!("{authority}{tail}")
    } else {
        format!("{scheme}://{authority}{tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys() {
        assert!(qualified_name("type").is_ok());
        assert!(qualified_name("example.com/tier").is_ok());
        assert!(qualified_name("node-role.kubernetes.io/control-plane").is_ok());
        assert!(qualified_name("a_b.c-d").is_ok());
        assert!(qualified_name("-type").is_err());
        assert!(qualified_name("type-").is_err());
        assert!(qualified_name("Example.com/x").is_err());
        assert!(qualified_name("a/b/c").is_err());
        assert!(qualified_name("example.com/").is_err());
        assert!(qualified_name(&"x".repeat(64)).is_err());
        assert!(qualified_name(&format!("{}/x", "a".repeat(254))).is_err());
    }

    #[test]
    fn label_values() {
        assert!(label_value("").is_ok());
        assert!(label_value("mysql").is_ok());
        assert!(label_value("v1.2_3-x").is_ok());
        assert!(label_value("has space").is_err());
        assert!(label_value("_x").is_err());
        assert!(label_value(&"x".repeat(64)).is_err());
    }

    #[test]
    fn reserved_labels() {
        assert!(reserved_label("type").is_none());
        assert!(reserved_label("node-role.kubernetes.io/worker").is_none());
        assert!(reserved_label("topology.kubernetes.io/zone").is_none());
        assert!(reserved_label("kubernetes.io/hostname").is_some());
        assert!(reserved_label("foo.k8s.io/x").is_some());
        assert!(reserved_label("kubernetes.io/role").is_some());
        assert!(reserved_label("node-role.kubernetes.io/master").is_some());
        assert!(reserved_label("notkubernetes.io/x").is_none());
    }

    #[test]
    fn taints() {
        let t = taint("dedicated=db:NoSchedule").unwrap();
        assert_eq!(
            (t.key.as_str(), t.value.as_deref(), t.effect.as_str()),
            ("dedicated", Some("db"), "NoSchedule")
        );
        let t = taint("node-role.kubernetes.io/control-plane:NoSchedule").unwrap();
        assert_eq!(t.value, None);
        assert!(taint("k=:NoExecute").unwrap().value == Some(String::new()));
        assert_eq!(
            taint("k:noschedule").unwrap_err().help.as_deref(),
            Some("did you mean `NoSchedule`?")
        );
        assert!(taint("k=v").is_err());
        assert!(taint("k=v v:NoSchedule").is_err());
    }

    #[test]
    fn kubernetes_versions() {
        assert_eq!(
            kubernetes_version("v1.34.2").unwrap(),
            Version::new(1, 34, 2)
        );
        assert!(kubernetes_version("1.34").unwrap_err().help.is_some());
        assert!(kubernetes_version("1.38.0")
            .unwrap_err()
            .message
            .contains("containerd"));
        assert!(kubernetes_version("latest").is_err());
    }

    #[test]
    fn addresses_and_endpoints() {
        assert!(address("10.0.0.1").is_ok());
        assert!(address("fd00::1").is_ok());
        assert!(address("node-1.example.com").is_ok());
        assert!(address("10.0.0.300").is_err());
        assert!(address("10.0.0.1:22").unwrap_err().help.is_some());
        for odd in ["0.0.0.0", "::", "127.0.0.1", "::1", "224.0.0.1", "ff02::1"] {
            assert!(address(odd).is_err(), "{odd}");
        }
        assert_eq!(
            address("::ffff:10.0.0.1").unwrap_err().help.as_deref(),
            Some("write the IPv4 address itself: `10.0.0.1`")
        );
        assert!(internal_address("10.0.0.5").is_ok());
        assert!(internal_address("node1").is_err());
        assert!(internal_address("169.254.1.1").is_err());
        assert!(internal_address("127.0.0.1").is_err());
        assert_eq!(
            endpoint("10.0.0.10:6443").unwrap(),
            ("10.0.0.10".into(), 6443)
        );
        assert_eq!(
            endpoint("[fd00::1]:6443").unwrap(),
            ("fd00::1".into(), 6443)
        );
        assert!(endpoint("10.0.0.10").is_err());
        assert!(endpoint("10.0.0.10:0").is_err());
        assert!(endpoint("fd00::1").is_err());
    }

    #[test]
    fn subnets_and_urls() {
        assert!(subnet("192.168.0.0/16").is_ok());
        assert_eq!(
            subnet("192.168.1.0/16").unwrap_err().help.as_deref(),
            Some("did you mean `192.168.0.0/16`?")
        );
        assert!(subnet("192.168.0.0").is_err());
        assert!(url("https://pkgs.k8s.io/core:/stable:").is_ok());
        assert!(url("ftp://x/y").is_err());
        assert!(url("https://").is_err());
        assert!(url("http://pkgs.k8s.io/core:/stable:").is_err());
        assert!(url("ftp://example.com/x").is_err());
        assert!(url("https://example.com/x.yaml?ref=main").is_ok());
        for (bad, shown) in [
            (
                "https://u:pw@example.com/x.yaml",
                "https://<redacted>@example.com/x.yaml",
            ),
            (
                "https://u@example.com/x.yaml",
                "https://<redacted>@example.com/x.yaml",
            ),
            (
                "https://example.com/x.yaml?ref=main&token=s3cr3t",
                "https://example.com/x.yaml?ref=main&token=<redacted>",
            ),
            (
                "https://b.s3.amazonaws.com/x?X-Amz-Signature=abc#f",
                "https://b.s3.amazonaws.com/x?X-Amz-Signature=<redacted>#f",
            ),
            (
                "https://gitlab.example/x?private_token=abc",
                "https://gitlab.example/x?private_token=<redacted>",
            ),
        ] {
            let e = url(bad).unwrap_err();
            assert!(e.message.contains(shown), "{}", e.message);
            assert!(
                !e.message.contains("pw@") && !e.message.contains("s3cr3t"),
                "{}",
                e.message
            );
            assert!(e.help.unwrap().contains("give its path instead"));
        }
    }

    #[test]
    fn subnet_sizes_as_kubeadm_checks_them() {
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        assert!(pod_subnet(net("192.168.0.0/16")).is_ok());
        assert!(pod_subnet(net("10.0.0.0/8")).is_ok());
        assert!(pod_subnet(net("10.244.0.0/24")).is_ok());
        for small in ["10.244.0.0/25", "10.244.0.1/32"] {
            let e = pod_subnet(net(small)).unwrap_err();
            assert!(
                e.message
                    .contains("is smaller than the size of node subnet with mask 24"),
                "{}",
                e.message
            );
        }
        assert!(pod_subnet(net("10.0.0.0/7"))
            .unwrap_err()
            .message
            .contains("pod subnet mask (7) and node-mask (24) difference is greater than 16"));
        assert!(service_subnet(net("10.96.0.0/12")).is_ok());
        assert!(service_subnet(net("10.96.0.0/28")).is_ok());
        assert!(service_subnet(net("10.96.0.0/11"))
            .unwrap_err()
            .message
            .contains(
            "specified service subnet is too large; for 32-bit addresses, the mask must be >= 12"
        ));
        assert!(service_subnet(net("10.96.0.0/29"))
            .unwrap_err()
            .message
            .contains("subnet with 8 address(es) is too small, the minimum is 10"));
        for v6 in ["fd00:10:244::/56", "fd00:10:96::/112"] {
            assert!(pod_subnet(net(v6)).is_err() && service_subnet(net(v6)).is_err());
        }
    }

    #[test]
    fn calico_versions() {
        assert!(calico_version("v3.30.3").is_ok());
        assert!(calico_version("3.30.3").unwrap_err().help.is_some());
        assert!(calico_version("v3.30").is_err());
    }
}
