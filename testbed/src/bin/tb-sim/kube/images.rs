//! A container's image, as the kubelet's image manager ensures it before the container
//! starts (pkg/kubelet/images/image_manager.go EnsureImageExists), for static pods
//! (staticpods.rs) and the pods the scheduler binds (podsync.rs) alike:
//!
//! - the pull policy: the container's `imagePullPolicy`, or the API's default when unset
//!   (pkg/apis/core/v1/defaults.go SetDefaults_Container: `Always` for a `:latest` or
//!   untagged image, else `IfNotPresent`; the kubelet applies the same defaults to a
//!   static pod's manifest);
//! - `Never`: the image must be present (CRI ImageStatus), else the container waits
//!   `ErrImageNeverPull` (`Container image "X" is not present with pull policy of Never`);
//! - `IfNotPresent`: present is enough, else pulled; `Always`: pulled each time the
//!   container starts, without asking ImageStatus first (imagePullPrecheck);
//! - a pull is not tried while it is in back-off (client-go flowcontrol.Backoff keyed by
//!   pod UID and image, 10 s doubling to 300 s, reset when unused for twice that:
//!   kubelet.go imageBackOffPeriod, MaxImageBackOff; IsInBackOffSinceUpdate): the
//!   container waits `ImagePullBackOff`, `Back-off pulling image "X": ErrImagePull: E`
//!   with the last pull's error (prevPullErrMsg);
//! - a failed pull (CRI PullImage: the real containerd asks the registry) leaves it
//!   waiting `ErrImagePull` with the runtime's error (evalCRIPullErr's fallback; the CRI
//!   client drops gRPC's `rpc error: code = Unknown desc = `, sandbox.rs `pull_image`);
//!   an ImageStatus that fails, `ImageInspectError` with upstream's message, whose image
//!   reference is empty on that path (`Failed to inspect image "": E`).
//!
//! Not modelled: events, image volumes, pull secrets and credential checks, a pull
//! deadline (tb-cri gives a pull 60 s, upstream none), pulls in parallel (one pull holds
//! the stand-in's whole pass), and the clean-up of unused back-off entries.

use std::time::{Duration, Instant};

use super::sandbox::Cri;

/// The first back-off after a failed pull (kubelet.go imageBackOffPeriod).
pub const BACKOFF_START: Duration = Duration::from_secs(10);
/// The longest (kubelet.go MaxImageBackOff).
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// One (pod, image)'s pull back-off: when the last pull failed, how long to wait after
/// it, and its error.
#[derive(Debug, Clone, Default)]
pub struct PullBackoff {
    last: Option<(Duration, Instant)>,
    error: Option<String>,
}

impl PullBackoff {
    /// When the next pull may be tried (now when not in back-off).
    pub fn until(&self, now: Instant) -> Instant {
        self.last
            .map_or(now, |(backoff, at)| (at + backoff).max(now))
    }

    fn in_backoff(&self, now: Instant) -> bool {
        self.last
            .is_some_and(|(backoff, at)| now.saturating_duration_since(at) < backoff)
    }

    /// A pull failed at `now` (flowcontrol.Backoff.Next).
    fn failed(&mut self, now: Instant, error: String) {
        let backoff = match self.last {
            Some((b, at)) if now.saturating_duration_since(at) <= 2 * BACKOFF_MAX => {
                (b * 2).min(BACKOFF_MAX)
            }
            _ => BACKOFF_START,
        };
        self.last = Some((backoff, now));
        self.error = Some(error);
    }
}

/// Why a container cannot start yet: its waiting reason and message, as the kubelet
/// reports them in the container's status.
#[derive(Debug, Clone, PartialEq)]
pub struct NotReady {
    pub reason: &'static str,
    pub message: String,
}

impl NotReady {
    /// What the kubelet logs of it: a failed pull as the image manager's event says it
    /// (`Failed to pull image "X": E`), anything else as `REASON: MESSAGE`.
    pub fn log_line(&self, image: &str) -> String {
        match self.reason {
            "ErrImagePull" => format!("Failed to pull image {image:?}: {}", self.message),
            reason => format!("{reason}: {}", self.message),
        }
    }
}

/// The pull policy of `container` (a pod spec's container, as JSON): its
/// `imagePullPolicy`, or the API's default for its image.
pub fn pull_policy(container: &serde_json::Value) -> String {
    if let Some(p) = container["imagePullPolicy"]
        .as_str()
        .filter(|p| !p.is_empty())
    {
        return p.to_string();
    }
    default_pull_policy(container["image"].as_str().unwrap_or_default()).to_string()
}

/// SetDefaults_Container: `Always` when parsers.ParseImageName gives the tag `latest`
/// (an image with neither tag nor digest gets `latest`; one with a digest keeps the tag
/// it names, if any), else `IfNotPresent`. Names the parser refuses are not told apart.
pub fn default_pull_policy(image: &str) -> &'static str {
    let (name, digest) = match image.split_once('@') {
        Some((name, _)) => (name, true),
        None => (image, false),
    };
    // The tag follows the last ':' after the last '/' (a registry's port is before it).
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.rsplit_once(':').map(|(_, t)| t) {
        Some("latest") => "Always",
        None if !digest => "Always",
        _ => "IfNotPresent",
    }
}

/// EnsureImageExists for `image` with `policy`, pulling through `cri` when the policy
/// asks for it and the pull is not in back-off.
pub fn ensure(
    cri: &Cri,
    image: &str,
    policy: &str,
    backoff: &mut PullBackoff,
    now: Instant,
) -> Result<(), NotReady> {
    // imagePullPrecheck: Always pulls without asking; the others ask ImageStatus, and on
    // its failure the message names the image reference the failed call returned ("").
    let present = match policy {
        "Always" => false,
        _ => cri.image_present(image).map_err(|e| NotReady {
            reason: "ImageInspectError",
            message: format!("Failed to inspect image \"\": {e}"),
        })?,
    };
    let pull = match policy {
        "Never" if !present => {
            return Err(NotReady {
                reason: "ErrImageNeverPull",
                message: format!(
                    "Container image {image:?} is not present with pull policy of Never"
                ),
            })
        }
        "Never" => false,
        "Always" => true,
        _ => !present,
    };
    if !pull {
        return Ok(());
    }
    if backoff.in_backoff(now) {
        let msg = format!("Back-off pulling image {image:?}");
        return Err(NotReady {
            reason: "ImagePullBackOff",
            message: match &backoff.error {
                Some(e) => format!("{msg}: ErrImagePull: {e}"),
                None => msg,
            },
        });
    }
    cri.pull_image(image).map_err(|e| {
        backoff.failed(now, e.clone());
        NotReady {
            reason: "ErrImagePull",
            message: e,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untagged_and_latest_images_are_always_pulled_by_default() {
        assert_eq!(default_pull_policy("nginx"), "Always");
        assert_eq!(default_pull_policy("nginx:latest"), "Always");
        assert_eq!(default_pull_policy("localhost:5000/web"), "Always");
        assert_eq!(default_pull_policy("nginx:1.27"), "IfNotPresent");
        assert_eq!(default_pull_policy("localhost:5000/web:2"), "IfNotPresent");
        assert_eq!(
            default_pull_policy("docker.io/calico/node:v3.30.3"),
            "IfNotPresent"
        );
        assert_eq!(default_pull_policy("busybox@sha256:abc"), "IfNotPresent");
        assert_eq!(default_pull_policy("busybox:latest@sha256:abc"), "Always");
        assert_eq!(
            default_pull_policy("busybox:1.36@sha256:abc"),
            "IfNotPresent"
        );
        let c = serde_json::json!({"image": "nginx", "imagePullPolicy": "IfNotPresent"});
        assert_eq!(pull_policy(&c), "IfNotPresent");
        assert_eq!(
            pull_policy(&serde_json::json!({"image": "nginx"})),
            "Always"
        );
    }

    #[test]
    fn the_pull_back_off_doubles_to_five_minutes_and_resets_after_ten_unused() {
        let t0 = Instant::now();
        let mut b = PullBackoff::default();
        assert!(!b.in_backoff(t0));
        assert_eq!(b.until(t0), t0);
        b.failed(t0, "e1".into());
        assert!(b.in_backoff(t0 + Duration::from_secs(9)));
        assert!(!b.in_backoff(t0 + Duration::from_secs(10)));
        let mut at = t0;
        let mut seen = Vec::new();
        for _ in 0..7 {
            at = b.until(at);
            b.failed(at, "e".into());
            seen.push(b.last.unwrap().0.as_secs());
        }
        assert_eq!(seen, [20, 40, 80, 160, 300, 300, 300]);
        // Unused for more than twice the maximum: back to the start.
        b.failed(at + Duration::from_secs(601), "e".into());
        assert_eq!(b.last.unwrap().0, BACKOFF_START);
    }
}
