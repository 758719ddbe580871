//! Checks that look across values: duplicate hosts, the control plane, subnets that
//! collide with each other or with the hosts.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::schema::{Context, Draft, SshDraft, DEFAULT_KNOWN_HOSTS, DEFAULT_SSH_PORT};
use super::tree::Reader;
use super::Role;

pub(crate) fn check(r: &mut Reader, draft: &Draft, ssh: &SshDraft, ctx: &Context) {
    duplicate_names(r, draft);
    duplicate_addresses(r, draft, ssh);
    control_plane(r, draft);
    ipv4_only(r, draft);
    subnets(r, draft);
    calico_behind(r, draft);
    home_for_defaults(r, draft, ssh, ctx);
}

/// A `calico.version` written in the inventory that Calico does not test on the
/// inventory's Kubernetes minor while a pinned release is: refused here, before any host
/// is touched, rather than left running behind after an upgrade. Without a written
/// version the tool picks one for the minor and plans the Calico upgrade itself.
fn calico_behind(r: &mut Reader, draft: &Draft) {
    let c = &draft.cluster;
    let (Some(at), Some(version)) = (&c.calico_version_at, &c.version) else {
        return;
    };
    if let Some(why) = super::versions::calico_behind(&at.value, version) {
        r.error_at(
            at,
            "cluster.calico.version",
            why,
            Some(format!(
                "write the newer release, or leave calico.version out and the tool picks \
                 {} for Kubernetes {}.{}",
                super::versions::default_calico(version),
                version.major,
                version.minor
            )),
        );
    }
}

/// The default known_hosts file is under `~`; without HOME there is no default.
fn home_for_defaults(r: &mut Reader, draft: &Draft, ssh: &SshDraft, ctx: &Context) {
    if ctx.home.is_some() || ssh.known_hosts_file.is_some() {
        return;
    }
    if draft.hosts.iter().any(|h| h.ssh.known_hosts_file.is_none()) {
        let at = &draft.hosts_at;
        r.problems.push(r.src.problem(
            at,
            at,
            "ssh.knownHostsFile",
            format!("HOME is not set, so the default knownHostsFile {DEFAULT_KNOWN_HOSTS} can't be found"),
            Some("set `ssh: {knownHostsFile: /path/to/known_hosts}`, or HOME".into()),
        ));
    }
}

fn duplicate_names(r: &mut Reader, draft: &Draft) {
    let mut seen: HashMap<&str, (usize, usize)> = HashMap::new();
    for host in &draft.hosts {
        let Some(name) = &host.name else { continue };
        if let Some((index, line)) = seen.get(name.value.as_str()) {
            r.error_at(
                name,
                &format!("hosts[{}].name", host.index),
                format!(
                    "the node name `{}` is already used by hosts[{index}] (line {line})",
                    name.value
                ),
                Some("node names must be unique in a cluster".into()),
            );
        } else {
            seen.insert(&name.value, (host.index, name.start.line()));
        }
    }
}

/// The same machine written twice (same address and SSH port) would be set up twice.
fn duplicate_addresses(r: &mut Reader, draft: &Draft, ssh: &SshDraft) {
    let mut seen: HashMap<(String, u16), (usize, usize)> = HashMap::new();
    for host in &draft.hosts {
        let Some(address) = &host.address else {
            continue;
        };
        let port = host.ssh.port.or(ssh.port).unwrap_or(DEFAULT_SSH_PORT);
        let canonical = match address.value.parse::<IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => address.value.to_ascii_lowercase(),
        };
        if let Some((index, line)) = seen.get(&(canonical.clone(), port)) {
            r.error_at(
                address,
                &format!("hosts[{}].address", host.index),
                format!(
                    "{}, SSH port {port}, is already hosts[{index}] (line {line})",
                    address.value
                ),
                Some("each host must be listed once; two hosts need different addresses or SSH ports".into()),
            );
        } else {
            seen.insert((canonical, port), (host.index, address.start.line()));
        }
    }
}

fn control_plane(r: &mut Reader, draft: &Draft) {
    if draft.hosts.is_empty() {
        return; // already reported as an empty list
    }
    // `up` sets up one control plane (kubeadm init); joining more needs HA work (a load
    // balanced endpoint, certificate upload) it does not do yet. Refused here so that
    // `validate` and `plan` say so too, with the line.
    let mut planes = draft
        .hosts
        .iter()
        .filter(|h| h.role == Some(Role::ControlPlane));
    if let Some(first) = planes.next() {
        let first_name = first.name.as_ref().map(|n| n.value.as_str()).unwrap_or("?");
        for extra in planes {
            if let Some(at) = &extra.role_at {
                r.error_at(
                    at,
                    &format!("hosts[{}].role", extra.index),
                    format!(
                        "a second control plane: bootstrap sets up one control plane \
                         (hosts[{}] `{first_name}`); HA is not implemented yet",
                        first.index
                    ),
                    Some("make this host a worker: `role: worker`".into()),
                );
            }
        }
    }
    let unknown_role = draft.hosts.iter().any(|h| h.role.is_none());
    let any = draft
        .hosts
        .iter()
        .any(|h| h.role == Some(Role::ControlPlane));
    if !any && !unknown_role {
        let at = &draft.hosts_at;
        r.problems.push(r.src.problem(
            at,
            at,
            "hosts",
            "no host has `role: control-plane`; `kubeadm init` needs one".into(),
            Some("make the first host the control plane: `role: control-plane`".into()),
        ));
    }
}

/// IPv6 is refused (rules::IPV4_ONLY): as node IP (`internalAddress`, or an `address`
/// without one), as the endpoint. An IPv6 `address` with an IPv4 `internalAddress` is
/// only where SSH connects, which is fine.
fn ipv4_only(r: &mut Reader, draft: &Draft) {
    for host in &draft.hosts {
        if let Some(internal) = host.internal_address.as_ref().filter(|a| a.value.is_ipv6()) {
            r.error_at(
                internal,
                &format!("hosts[{}].internalAddress", host.index),
                format!("{} is an IPv6 address", internal.value),
                Some(super::rules::IPV4_ONLY.into()),
            );
            continue;
        }
        let Some(address) = &host.address else {
            continue;
        };
        let v6 = address.value.parse::<IpAddr>().is_ok_and(|ip| ip.is_ipv6());
        if v6 && host.internal_address.is_none() {
            r.error_at(
                address,
                &format!("hosts[{}].address", host.index),
                format!(
                    "{} is an IPv6 address, and without internalAddress it would be the node IP",
                    address.value
                ),
                Some(format!(
                    "{}; set `internalAddress` to the host's IPv4 address to reach it over IPv6 \
                     SSH",
                    super::rules::IPV4_ONLY
                )),
            );
        }
    }
    if let Some(host) = &draft.cluster.endpoint_host {
        if host.value.parse::<IpAddr>().is_ok_and(|ip| ip.is_ipv6()) {
            r.error_at(
                host,
                "cluster.controlPlaneEndpoint",
                format!("{} is an IPv6 address", host.value),
                Some(super::rules::IPV4_ONLY.into()),
            );
        }
    }
}

fn subnets(r: &mut Reader, draft: &Draft) {
    let c = &draft.cluster;
    let (Some(pod), Some(service)) = (c.pod_subnet, c.service_subnet) else {
        return;
    };
    let describe = |key: &str, net: &IpNet, written: bool| {
        if written {
            format!("cluster.{key} {net}")
        } else {
            format!("cluster.{key} {net} (the default)")
        }
    };
    let pod_name = describe("podSubnet", &pod, c.pod_subnet_at.is_some());
    let service_name = describe("serviceSubnet", &service, c.service_subnet_at.is_some());
    if overlap(&pod, &service) {
        // Point at whichever was written; both defaults never overlap.
        let (at, field, other) = match (&c.service_subnet_at, &c.pod_subnet_at) {
            (Some(at), _) => (at, "cluster.serviceSubnet", &pod_name),
            (None, Some(at)) => (at, "cluster.podSubnet", &service_name),
            (None, None) => return,
        };
        r.error_at(
            at,
            field,
            format!("overlaps {other}: pod and service addresses would collide"),
            Some(
                "pick two subnets that don't overlap, e.g. 192.168.0.0/16 and 10.96.0.0/12".into(),
            ),
        );
    }
    let endpoint = c
        .endpoint_host
        .as_ref()
        .map(|e| (e, "cluster.controlPlaneEndpoint".to_string()));
    let addresses = draft.hosts.iter().filter_map(|h| {
        let address = h.address.as_ref()?;
        Some((address, format!("hosts[{}].address", h.index)))
    });
    for (address, field) in addresses.chain(endpoint) {
        let Ok(ip) = address.value.parse::<IpAddr>() else {
            continue;
        };
        for (net, name, key) in [
            (pod, &pod_name, "podSubnet"),
            (service, &service_name, "serviceSubnet"),
        ] {
            if net.contains(&ip) {
                r.error_at(
                    address,
                    &field,
                    format!(
                        "{ip} is inside {name}; the cluster would route this address into \
                         the pod/service network"
                    ),
                    Some(match free_range(draft, key, &pod, &service) {
                        Some(free) => format!(
                            "set cluster.{key} to a range that doesn't contain the hosts' \
                             network, e.g. `{key}: {free}`"
                        ),
                        None => format!(
                            "set cluster.{key} to a range that doesn't contain the hosts' network"
                        ),
                    }),
                );
            }
        }
    }
}

/// A common private range for `key` that holds no host address and doesn't overlap the
/// other subnet, to suggest as a replacement.
fn free_range(draft: &Draft, key: &str, pod: &IpNet, service: &IpNet) -> Option<IpNet> {
    let (candidates, other): (&[&str], &IpNet) = if key == "podSubnet" {
        (
            &["10.244.0.0/16", "172.16.0.0/16", "192.168.0.0/16"],
            service,
        )
    } else {
        (&["10.96.0.0/12", "172.20.0.0/16", "10.112.0.0/12"], pod)
    };
    let ips: Vec<IpAddr> = draft
        .hosts
        .iter()
        .filter_map(|h| h.address.as_ref()?.value.parse::<IpAddr>().ok())
        .chain(
            draft
                .cluster
                .endpoint_host
                .as_ref()
                .and_then(|e| e.value.parse::<IpAddr>().ok()),
        )
        .collect();
    candidates
        .iter()
        .filter_map(|c| c.parse::<IpNet>().ok())
        .find(|c| !overlap(c, other) && !ips.iter().any(|ip| c.contains(ip)))
}

fn overlap(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}
