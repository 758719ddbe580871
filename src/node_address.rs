//! The node IP: the address the kubelet registers (`--node-ip`), the API server
//! advertises and etcd binds. It must be on one of the host's interfaces: the kubelet
//! refuses another ("node IP: ... not found in the host's network interfaces"), etcd
//! cannot bind it (so `kubeadm init` times out) and kubeadm refuses a host name as
//! advertise address. The SSH address often is none of these (a cloud VM's public IP,
//! a NAT port forward, a DNS name), so the node IP is chosen from the host's facts.

use std::net::IpAddr;

use crate::facts::Network;
use crate::inventory::Host;

pub use crate::inventory::NodeAddress;

/// Chooses the node IP of `host` from its network facts, in order: `internalAddress`
/// (which must be on an interface), the SSH address when it is on an interface, the IPv4
/// address of the interface holding the default route (the kubelet's own default).
pub fn choose(host: &Host, net: &Network) -> Result<NodeAddress, String> {
    let found = |ip: IpAddr, reason: String| {
        net.interface_of(ip).map(|interface| NodeAddress {
            ip,
            interface: interface.to_string(),
            reason,
            differs: ip.to_string() != host.ssh_address(),
        })
    };
    if let Some(ip) = host.internal_address {
        return found(ip, "internalAddress in the inventory".into()).ok_or_else(|| {
            format!(
                "internalAddress {ip} is on none of the host's interfaces (it has {})",
                own_addresses(net)
            )
        });
    }
    let ssh_ip = host.ssh_address().parse::<IpAddr>().ok();
    if let Some(n) = ssh_ip.and_then(|ip| found(ip, "the SSH address".into())) {
        return Ok(n);
    }
    let not_own = match ssh_ip {
        Some(ip) => format!(
            "the SSH address {ip} is on none of the host's interfaces (a public or NAT address)"
        ),
        None => format!("the SSH address {} is a host name", host.ssh_address()),
    };
    let default = net
        .default_interface
        .as_deref()
        .and_then(|dev| Some((dev, net.ipv4_of(dev)?)));
    match default {
        Some((dev, ip)) => Ok(NodeAddress {
            ip,
            interface: dev.to_string(),
            reason: format!(
                "{not_own}; {ip} is on {dev}, the interface of the default route \
                 (set internalAddress to choose another)"
            ),
            differs: true,
        }),
        None => Err(format!(
            "{not_own}, and the host has no default route with an IPv4 address to take the \
             node IP from (it has {}): set internalAddress in the inventory",
            own_addresses(net)
        )),
    }
}

/// The first of the host's addresses (not loopback) that lies inside the pod or the
/// service subnet, as a reason to refuse the host: the cluster would route that address
/// into the pod/service network (and Calico's pool would hand it out).
pub fn subnet_conflict(net: &Network, pod_subnet: &str, service_subnet: &str) -> Option<String> {
    let subnets = [("podSubnet", pod_subnet), ("serviceSubnet", service_subnet)];
    net.addresses
        .iter()
        .filter(|a| !a.ip.is_loopback())
        .find_map(|a| {
            subnets.iter().find_map(|(key, subnet)| {
                let parsed: ipnet::IpNet = subnet.parse().ok()?;
                parsed.contains(&a.ip).then(|| {
                    format!(
                        "its address {} (on {}) is inside cluster.{key} {subnet}: the cluster \
                         would route it into the pod/service network; choose a {key} that \
                         holds none of the hosts' addresses",
                        a.ip, a.interface
                    )
                })
            })
        })
}

/// The host's addresses other than loopback, for messages.
fn own_addresses(net: &Network) -> String {
    let list: Vec<String> = net
        .addresses
        .iter()
        .filter(|a| !a.ip.is_loopback())
        .map(|a| format!("{} on {}", a.ip, a.interface))
        .collect();
    if list.is_empty() {
        "no address but loopback".into()
    } else {
        list.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::InterfaceAddress;

    /// A host as the inventory reader makes it (so new inventory fields need no change here).
    fn host(address: &str, internal: Option<&str>) -> Host {
        let internal = internal
            .map(|i| format!(", internalAddress: {i}"))
            .unwrap_or_default();
        let text = format!(
            "cluster: {{podSubnet: 10.244.0.0/16}}\nssh: {{knownHostsFile: /kh}}\nhosts:\n  - {{name: n1, address: {address}, role: control-plane{internal}}}\n"
        );
        crate::inventory::parse(std::path::Path::new("/inv.yaml"), text)
            .unwrap()
            .hosts
            .remove(0)
    }

    fn net(default: Option<&str>) -> Network {
        let a = |interface: &str, ip: &str| InterfaceAddress {
            interface: interface.into(),
            ip: ip.parse().unwrap(),
            prefix: 24,
        };
        Network {
            addresses: vec![
                a("lo", "127.0.0.1"),
                a("eth0", "10.0.2.15"),
                a("eth1", "192.168.56.10"),
            ],
            default_interface: default.map(String::from),
        }
    }

    #[test]
    fn the_ssh_address_when_the_host_has_it() {
        let n = choose(&host("192.168.56.10", None), &net(Some("eth0"))).unwrap();
        assert_eq!(
            (n.ip.to_string(), n.interface.as_str()),
            ("192.168.56.10".into(), "eth1")
        );
        assert!(!n.differs);
    }

    /// `address` an ssh_config alias (`Host cp1` / `HostName 192.168.56.10`): the SSH
    /// address is the HostName, as for `ssh cp1`, not the alias.
    #[test]
    fn behind_an_ssh_config_alias_the_ssh_address_is_the_host_name() {
        let mut h = host("cp1", None);
        h.ssh.host_name = Some("192.168.56.10".into());
        let n = choose(&h, &net(Some("eth0"))).unwrap();
        assert_eq!(
            (n.ip.to_string(), n.interface.as_str()),
            ("192.168.56.10".into(), "eth1")
        );
        assert_eq!(n.reason, "the SSH address");
        assert!(!n.differs);
    }

    #[test]
    fn a_public_address_or_host_name_takes_the_default_route_s_interface() {
        let n = choose(&host("203.0.113.7", None), &net(Some("eth0"))).unwrap();
        assert_eq!(n.ip.to_string(), "10.0.2.15");
        assert!(n.differs);
        assert!(
            n.reason
                .contains("203.0.113.7 is on none of the host's interfaces"),
            "{}",
            n.reason
        );
        assert!(
            n.reason
                .contains("eth0, the interface of the default route"),
            "{}",
            n.reason
        );
        let n = choose(&host("node1.example.com", None), &net(Some("eth0"))).unwrap();
        assert!(n
            .reason
            .starts_with("the SSH address node1.example.com is a host name"));
        let e = choose(&host("node1.example.com", None), &net(None)).unwrap_err();
        assert!(e.contains("set internalAddress"), "{e}");
    }

    #[test]
    fn an_interface_address_inside_a_subnet_is_a_conflict() {
        let n = net(Some("eth0"));
        assert_eq!(subnet_conflict(&n, "10.244.0.0/16", "10.96.0.0/12"), None);
        let e = subnet_conflict(&n, "192.168.0.0/16", "10.96.0.0/12").unwrap();
        assert!(
            e.starts_with(
                "its address 192.168.56.10 (on eth1) is inside cluster.podSubnet 192.168.0.0/16"
            ),
            "{e}"
        );
        let e = subnet_conflict(&n, "10.244.0.0/16", "10.0.0.0/12").unwrap();
        assert!(
            e.contains("10.0.2.15 (on eth0) is inside cluster.serviceSubnet"),
            "{e}"
        );
    }

    #[test]
    fn internal_address_wins_and_must_be_on_the_host() {
        let n = choose(
            &host("203.0.113.7", Some("192.168.56.10")),
            &net(Some("eth0")),
        )
        .unwrap();
        assert_eq!(n.interface, "eth1");
        let e = choose(&host("203.0.113.7", Some("10.9.9.9")), &net(Some("eth0"))).unwrap_err();
        assert!(e.contains("10.9.9.9 is on none of the host's interfaces (it has 10.0.2.15 on eth0, 192.168.56.10 on eth1)"), "{e}");
    }
}
