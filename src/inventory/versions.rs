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

/// A Kubernetes minor, `(1, 35)`.
pub type Minor = (u64, u64);

/// The Calico releases this tool pins, with the Kubernetes minors Calico tests each on:
/// Calico's "System requirements for Kubernetes" page of that release, "Supported
/// versions" (tigera/docs `calico_versioned_docs/version-3.XX/_includes/partials/
/// _system-requirements.mdx`, read at commit f2a276243): 3.29 is tested on 1.29-1.32,
/// 3.30 on 1.31-1.35, 3.31 on 1.32-1.35, 3.32 on 1.34-1.36. Oldest first.
pub const CALICO_TESTED: &[(&str, Minor, Minor)] = &[
    ("v3.29.6", (1, 29), (1, 32)),
    ("v3.30.3", (1, 31), (1, 35)),
    ("v3.31.2", (1, 32), (1, 35)),
    ("v3.32.0", (1, 34), (1, 36)),
];

/// The `(oldest, newest)` Kubernetes minors Calico tests `calico` (`v3.30.3`) on, from
/// [`CALICO_TESTED`] by Calico minor; None for a release line this tool does not know.
pub fn calico_tested_range(calico: &str) -> Option<(Minor, Minor)> {
    let line = |v: &str| v.rsplit_once('.').map(|(line, _)| line.to_string());
    let want = line(calico)?;
    CALICO_TESTED
        .iter()
        .find(|(v, ..)| line(v).as_deref() == Some(want.as_str()))
        .map(|&(_, lo, hi)| (lo, hi))
}

/// The Calico release an inventory gets when it names none, for its Kubernetes version.
///
/// [`DEFAULT_CALICO`] wherever Calico does not test a newer Kubernetes only: on older
/// minors too, so that no cluster ever sees its Calico downgraded by this choice (3.30 on
/// 1.30 is "may work" in Calico's words; a downgrade is what breaks). A minor newer than
/// the default is tested on gets the oldest pinned release tested on it, the smallest
/// step up; a minor no pinned release is tested on yet gets the newest.
pub fn default_calico(kubernetes: &Version) -> &'static str {
    let minor = (kubernetes.major, kubernetes.minor);
    let (_, default_newest) =
        calico_tested_range(DEFAULT_CALICO).expect("DEFAULT_CALICO is in CALICO_TESTED");
    if minor <= default_newest {
        return DEFAULT_CALICO;
    }
    CALICO_TESTED
        .iter()
        .find(|(_, lo, hi)| (*lo..=*hi).contains(&minor))
        .or(CALICO_TESTED.last())
        .map(|(v, ..)| *v)
        .expect("CALICO_TESTED is not empty")
}

/// Why `calico` is behind Kubernetes `kubernetes`: Calico does not test it on that
/// minor, while a pinned release is. None when it is tested there, when its release
/// line is unknown, or when no pinned release is tested on that minor either.
pub fn calico_behind(calico: &str, kubernetes: &Version) -> Option<String> {
    let minor = (kubernetes.major, kubernetes.minor);
    let (_, newest) = calico_tested_range(calico)?;
    if minor <= newest {
        return None;
    }
    let (better, ..) = CALICO_TESTED
        .iter()
        .find(|(_, lo, hi)| (*lo..=*hi).contains(&minor))?;
    Some(format!(
        "Calico {calico} is tested on Kubernetes up to {}.{}, not {}.{} (Calico's system \
         requirements); Calico {better} is tested on it",
        newest.0, newest.1, minor.0, minor.1
    ))
}

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
    fn calico_follows_the_kubernetes_minor() {
        let v = |s| Version::parse(s).unwrap();
        assert!(calico_tested_range(DEFAULT_CALICO).is_some());
        // The default where Calico tests it, and on older minors (never a downgrade).
        for k in ["1.30.4", "1.31.0", "1.34.2", "1.35.4"] {
            assert_eq!(default_calico(&v(k)), DEFAULT_CALICO, "{k}");
        }
        assert_eq!(default_calico(&v("1.36.3")), "v3.32.0");
        // Nothing pinned is tested on 1.37 yet: the newest.
        assert_eq!(default_calico(&v("1.37.0")), "v3.32.0");
        // Every supported minor's default is tested there or is the newest pinned.
        assert_eq!(calico_behind(DEFAULT_CALICO, &v("1.35.4")), None);
        let behind = calico_behind("v3.30.3", &v("1.36.1")).unwrap();
        assert!(
            behind.contains("v3.30.3") && behind.contains("1.36") && behind.contains("v3.32.0"),
            "{behind}"
        );
        assert!(calico_behind("v3.29.1", &v("1.33.0"))
            .unwrap()
            .contains("up to 1.32"));
        // Older Kubernetes than tested: "may work", not behind; unknown lines: no verdict.
        assert_eq!(calico_behind("v3.32.0", &v("1.30.0")), None);
        assert_eq!(calico_behind("v3.33.1", &v("1.37.0")), None);
        assert_eq!(calico_behind("v3.32.0", &v("1.37.0")), None);
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
