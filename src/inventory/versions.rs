//! The versions this tool supports, in one place.
//!
//! Everything that depends on "which Kubernetes can we install" reads these constants, so
//! widening support is a one-line change here (plus whatever the new version needs in the
//! playbooks).

use semver::Version;

/// The oldest supported Kubernetes minor (inclusive). Older minors have left upstream
/// support and pkgs.k8s.io, and kubeadm 1.30 is where the bridge-nf-call preflight check
/// went away, which the prerequisites rely on.
pub const SUPPORTED_MIN: (u64, u64) = (1, 30);

/// The newest supported Kubernetes minor (inclusive): `1.30.0 ..= 1.37.x`.
///
/// 1.38 drops containerd 1.x (kubernetes/enhancements#6087) and Ubuntu's `docker.io`
/// brings containerd 1.7, so 1.38 and later are refused with [`CONTAINERD_1X_MESSAGE`].
pub const SUPPORTED_MAX: (u64, u64) = (1, 37);

/// The supported minors as one range, `1.30 ..= 1.37`: compare `(major, minor)` with it.
pub const SUPPORTED: std::ops::RangeInclusive<(u64, u64)> = SUPPORTED_MIN..=SUPPORTED_MAX;

/// The first minor that no longer works with the containerd 1.7 that Ubuntu's `docker.io`
/// depends on.
pub const CONTAINERD_1X_DROPPED: (u64, u64) = (1, 38);

/// The oldest containerd the offered Kubernetes releases (1.30 to 1.37) run on:
/// containerd's RELEASES.md ("Kubernetes Support") lists 1.6 for Kubernetes up to 1.29
/// only, and 1.6 is end of life. A host with an older one is refused before any change.
pub const CONTAINERD_MIN: (u64, u64) = (1, 7);

/// Why 1.38 and later are refused.
pub const CONTAINERD_1X_MESSAGE: &str = "Kubernetes 1.38 drops support for containerd 1.x \
(kubernetes/enhancements#6087), and Ubuntu's docker.io package brings containerd 1.7; \
this tool supports Kubernetes 1.30 to 1.37";

/// The Kubernetes version an inventory gets when it names none: the newest release the
/// tool's defaults have been checked against on pkgs.k8s.io. Keep it inside
/// `SUPPORTED_MIN ..= SUPPORTED_MAX` (a unit test checks).
pub const DEFAULT_KUBERNETES: &str = "1.34.2";

/// The Calico release applied when the inventory names none (manifest from
/// `https://raw.githubusercontent.com/projectcalico/calico/<version>/manifests/calico.yaml`).
pub const DEFAULT_CALICO: &str = "v3.30.3";

/// Where the kubelet/kubeadm/kubectl packages come from: one repository per minor below
/// this base (`<base>/v1.34/deb/`).
pub const DEFAULT_PACKAGE_REPOSITORY: &str = "https://pkgs.k8s.io/core:/stable:";

/// Why a version can't be installed, or `Ok(())` when it is supported.
pub fn check_supported(version: &Version) -> Result<(), String> {
    let minor = (version.major, version.minor);
    if minor >= CONTAINERD_1X_DROPPED {
        return Err(CONTAINERD_1X_MESSAGE.to_string());
    }
    if !SUPPORTED.contains(&minor) {
        return Err(format!(
            "Kubernetes {}.{} is not supported; this tool supports {}.{} to {}.{}",
            version.major,
            version.minor,
            SUPPORTED_MIN.0,
            SUPPORTED_MIN.1,
            SUPPORTED_MAX.0,
            SUPPORTED_MAX.1
        ));
    }
    if !version.pre.is_empty() || !version.build.is_empty() {
        return Err(format!(
            "{version} is a pre-release or build variant; pkgs.k8s.io's stable repositories \
             publish only releases like {}.{}.0",
            version.major, version.minor
        ));
    }
    Ok(())
}

/// The default Kubernetes version, parsed.
pub fn default_kubernetes() -> Version {
    Version::parse(DEFAULT_KUBERNETES).expect("DEFAULT_KUBERNETES is a valid version")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_supported() {
        assert_eq!(check_supported(&default_kubernetes()), Ok(()));
    }

    #[test]
    fn range_bounds() {
        let v = |s| Version::parse(s).unwrap();
        assert!(check_supported(&v("1.30.0")).is_ok());
        assert!(check_supported(&v("1.37.9")).is_ok());
        assert!(check_supported(&v("1.29.15"))
            .unwrap_err()
            .contains("not supported"));
        assert!(check_supported(&v("1.38.0"))
            .unwrap_err()
            .contains("containerd 1.x"));
        assert!(check_supported(&v("2.0.0"))
            .unwrap_err()
            .contains("containerd 1.x"));
        assert!(check_supported(&v("1.34.0-rc.1"))
            .unwrap_err()
            .contains("pre-release"));
    }
}
