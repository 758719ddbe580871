//! Versions: kubeadm's own, the control plane's, the kubelet's, the skew rules between
//! them, and the images kubeadm uses for each minor release.

use std::fmt;

/// A Kubernetes release version, `v1.34.2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KVer {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl KVer {
    /// Parses "v1.34.2", "1.34.2" or a package version "1.34.2-1.1" (the Debian
    /// revision is dropped).
    pub fn parse(s: &str) -> Option<KVer> {
        let s = s.trim().trim_start_matches('v');
        let upstream = s.split('-').next()?;
        let v = semver::Version::parse(upstream).ok()?;
        Some(KVer {
            major: v.major,
            minor: v.minor,
            patch: v.patch,
        })
    }

    pub fn minor_str(&self) -> String {
        format!("{}.{}", self.major, self.minor)
    }
}

impl fmt::Display for KVer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The version of the installed kubeadm package; kubeadm is only on PATH when its
/// package is installed, so a missing entry means a broken dpkg database.
pub fn kubeadm_version() -> KVer {
    crate::common::installed_version("kubeadm")
        .and_then(|v| KVer::parse(&v))
        .unwrap_or(KVer {
            major: 1,
            minor: 34,
            patch: 2,
        })
}

/// The kubelet binary's version (`kubelet --version`), if the package is installed.
pub fn kubelet_version() -> Option<KVer> {
    crate::common::installed_version("kubelet").and_then(|v| KVer::parse(&v))
}

/// kubeadm's MinimumControlPlaneVersion: one minor below its own.
pub fn min_control_plane(kubeadm: KVer) -> KVer {
    KVer {
        major: kubeadm.major,
        minor: kubeadm.minor.saturating_sub(1),
        patch: 0,
    }
}

/// kubeadm's MinimumKubeletVersion: three minors below its own.
pub fn min_kubelet(kubeadm: KVer) -> KVer {
    KVer {
        major: kubeadm.major,
        minor: kubeadm.minor.saturating_sub(3),
        patch: 0,
    }
}

/// Error of `kubeadm init` for a control plane version kubeadm can't deploy.
pub fn check_control_plane_version(kubeadm: KVer, k8s: KVer) -> Result<(), String> {
    let min = min_control_plane(kubeadm);
    if k8s < min {
        return Err(format!(
            "this version of kubeadm only supports deploying clusters with the control plane version >= {}.{}.{}. Current version: {}",
            min.major, min.minor, min.patch, k8s
        ));
    }
    Ok(())
}

/// The KubernetesVersion preflight check: a warning when the control plane would be
/// newer than kubeadm's minor.
pub fn kubernetes_version_warning(kubeadm: KVer, k8s: KVer) -> Option<String> {
    (k8s.major > kubeadm.major || (k8s.major == kubeadm.major && k8s.minor > kubeadm.minor))
        .then(|| {
            format!(
                "Kubernetes version is greater than kubeadm version. Please consider to upgrade kubeadm. Kubernetes version: {}.{}.{}. Kubeadm version: {}.{}.x",
                k8s.major, k8s.minor, k8s.patch, kubeadm.major, kubeadm.minor
            )
        })
}

/// The KubeletVersion preflight check. `k8s` is None for `kubeadm join`, which only
/// checks the lower bound.
pub fn check_kubelet_version(
    kubeadm: KVer,
    kubelet: Option<KVer>,
    k8s: Option<KVer>,
) -> Result<(), String> {
    let Some(kubelet) = kubelet else {
        return Err(
            "couldn't get kubelet version: cannot execute 'kubelet --version': exec: \"kubelet\": executable file not found in $PATH"
                .into(),
        );
    };
    if kubelet < min_kubelet(kubeadm) {
        return Err(format!(
            "Kubelet version \"{kubelet}\" is lower than kubeadm can support. Please upgrade kubelet"
        ));
    }
    if let Some(k8s) = k8s {
        if kubelet.major > k8s.major || kubelet.minor > k8s.minor {
            return Err(format!(
                "the kubelet version is higher than the control plane version. This is not a supported version skew and may lead to a malfunctional cluster. Kubelet version: \"{}.{}.{}\" Control plane version: \"{}.{}.{}\"",
                kubelet.major, kubelet.minor, kubelet.patch, k8s.major, k8s.minor, k8s.patch
            ));
        }
    }
    Ok(())
}

/// The outcome of kubeadm's upgrade version policy: mandatory errors always stop an
/// upgrade, skippable ones unless `--force` is given.
#[derive(Debug, Default, PartialEq)]
pub struct Skew {
    pub mandatory: Vec<String>,
    pub skippable: Vec<String>,
}

/// `kubeadm upgrade apply`'s version policy (EnforceVersionPolicies).
pub fn check_upgrade(kubeadm: KVer, cluster: KVer, target: KVer) -> Skew {
    let mut s = Skew::default();
    if kubeadm.major > target.major || kubeadm.minor > target.minor {
        s.skippable.push(format!(
            "Kubeadm version {kubeadm} can only be used to upgrade to Kubernetes version {}.{}",
            kubeadm.major, kubeadm.minor
        ));
    }
    if kubeadm < target {
        let msg = format!(
            "Specified version to upgrade to \"{target}\" is higher than the kubeadm version \"{kubeadm}\". Upgrade kubeadm first using the tool you used to install kubeadm"
        );
        if kubeadm.minor < target.minor || kubeadm.major < target.major {
            s.mandatory.push(msg);
        } else {
            s.skippable.push(msg);
        }
    }
    if target.minor > cluster.minor + 1 {
        s.mandatory.push(format!(
            "Specified version to upgrade to \"{target}\" is too high; kubeadm can upgrade only 1 minor version at a time"
        ));
    }
    if target.minor < cluster.minor {
        s.mandatory.push(format!(
            "Specified version to upgrade to \"{target}\" is an unsupported version and can't be used for upgrade. Downgrades of the minor version are not supported."
        ));
    } else if target < cluster {
        s.skippable.push(format!(
            "Specified version to upgrade to \"{target}\" is equal to or lower than the cluster version \"{cluster}\". Downgrading patch versions is not supported"
        ));
    }
    s
}

/// Images kubeadm uses for a control plane version (`kubeadm config images list`).
pub struct Images {
    pub coredns: &'static str,
    pub pause: &'static str,
    pub etcd: &'static str,
}

/// The coredns/pause/etcd tags kubeadm of that minor pins.
pub fn images_for(v: KVer) -> Images {
    match v.minor {
        0..=28 => Images {
            coredns: "v1.10.1",
            pause: "3.9",
            etcd: "3.5.9-0",
        },
        29 => Images {
            coredns: "v1.11.1",
            pause: "3.9",
            etcd: "3.5.16-0",
        },
        30 => Images {
            coredns: "v1.11.3",
            pause: "3.9",
            etcd: "3.5.15-0",
        },
        31 => Images {
            coredns: "v1.11.3",
            pause: "3.10",
            etcd: "3.5.15-0",
        },
        32 => Images {
            coredns: "v1.11.3",
            pause: "3.10",
            etcd: "3.5.16-0",
        },
        33 => Images {
            coredns: "v1.12.0",
            pause: "3.10",
            etcd: "3.5.21-0",
        },
        34 => Images {
            coredns: "v1.12.1",
            pause: "3.10.1",
            etcd: "3.6.4-0",
        },
        _ => Images {
            coredns: "v1.13.1",
            pause: "3.10.1",
            etcd: "3.6.6-0",
        },
    }
}

pub const REGISTRY: &str = "registry.k8s.io";

/// The image list in `kubeadm config images list` order.
pub fn image_list(v: KVer, repo: &str) -> Vec<String> {
    let i = images_for(v);
    vec![
        format!("{repo}/kube-apiserver:{v}"),
        format!("{repo}/kube-controller-manager:{v}"),
        format!("{repo}/kube-scheduler:{v}"),
        format!("{repo}/kube-proxy:{v}"),
        format!("{repo}/coredns/coredns:{}", i.coredns),
        pause_image(repo),
        format!("{repo}/etcd:{}", i.etcd),
    ]
}

/// kubeadm's pause image: a constant of the kubeadm binary, whatever
/// --kubernetes-version says (cmd/kubeadm/app/images/images.go GetPauseImage uses
/// constants.PauseVersion), so the installed kubeadm's minor picks the tag.
pub fn pause_image(repo: &str) -> String {
    format!("{repo}/pause:{}", images_for(kubeadm_version()).pause)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> KVer {
        KVer::parse(s).unwrap()
    }

    #[test]
    fn parses_all_spellings() {
        assert_eq!(v("v1.34.2"), v("1.34.2-1.1"));
        assert_eq!(v("1.34.2").to_string(), "v1.34.2");
        assert!(KVer::parse("stable").is_none());
    }

    #[test]
    fn control_plane_bounds() {
        assert!(check_control_plane_version(v("1.34.2"), v("1.33.0")).is_ok());
        let e = check_control_plane_version(v("1.34.2"), v("1.32.9")).unwrap_err();
        assert_eq!(e, "this version of kubeadm only supports deploying clusters with the control plane version >= 1.33.0. Current version: v1.32.9");
        assert!(kubernetes_version_warning(v("1.34.2"), v("1.35.0")).is_some());
        assert!(kubernetes_version_warning(v("1.34.2"), v("1.34.9")).is_none());
    }

    #[test]
    fn kubelet_skew() {
        let k = v("1.34.2");
        assert!(check_kubelet_version(k, Some(v("1.34.2")), Some(v("1.34.0"))).is_ok());
        assert!(check_kubelet_version(k, Some(v("1.33.1")), Some(v("1.34.0"))).is_ok());
        let e = check_kubelet_version(k, Some(v("1.35.0")), Some(v("1.34.2"))).unwrap_err();
        assert!(e.starts_with("the kubelet version is higher than the control plane version"));
        assert!(check_kubelet_version(k, Some(v("1.30.0")), None)
            .unwrap_err()
            .contains("is lower than kubeadm can support"));
        assert!(check_kubelet_version(k, None, None)
            .unwrap_err()
            .contains("executable file not found"));
    }

    #[test]
    fn upgrade_rules() {
        let kubeadm = v("1.34.2");
        assert_eq!(
            check_upgrade(kubeadm, v("1.33.5"), v("1.34.2")),
            Skew::default()
        );
        assert!(
            check_upgrade(kubeadm, v("1.33.5"), v("1.35.0")).mandatory[0]
                .contains("Upgrade kubeadm first")
        );
        assert!(
            check_upgrade(v("1.35.1"), v("1.33.5"), v("1.35.1")).mandatory[0]
                .contains("can upgrade only 1 minor version at a time")
        );
        assert!(!check_upgrade(kubeadm, v("1.34.2"), v("1.33.5"))
            .mandatory
            .is_empty());
        assert_eq!(
            check_upgrade(kubeadm, v("1.34.2"), v("1.34.2")),
            Skew::default()
        );
        assert_eq!(
            check_upgrade(kubeadm, v("1.34.0"), v("1.34.3"))
                .skippable
                .len(),
            1
        );
    }

    #[test]
    fn image_list_for_134() {
        let l = image_list(v("1.34.2"), REGISTRY);
        assert_eq!(l[0], "registry.k8s.io/kube-apiserver:v1.34.2");
        assert_eq!(l.len(), 7);
        assert!(l[5].starts_with("registry.k8s.io/pause:"));
    }
}
