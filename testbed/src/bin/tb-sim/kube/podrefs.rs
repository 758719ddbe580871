//! What a bound pod needs from the API server before the kubelet starts its containers,
//! for the kubelet stand-in of the REAL control plane (podsync.rs,
//! testbed/STANDINS-kubelet-real.md "Pods the real scheduler binds"): the ConfigMaps and
//! Secrets its volumes mount and its containers' environment reads. The real kubelet does
//! not start a pod while one that is not `optional` is missing:
//!
//! - a volume (`configMap`, `secret`, or a `projected` source, such as the
//!   `kube-root-ca.crt` ConfigMap of every service account token volume) cannot be set up:
//!   the pod stays Pending, its containers waiting with reason `ContainerCreating`, and
//!   the kubelet reports `MountVolume.SetUp failed for volume "V" : configmap "N" not
//!   found` (pkg/volume/configmap, pkg/volume/secret, pkg/volume/projected SetUpAt;
//!   operationexecutor GenerateError);
//! - `envFrom` or `env.valueFrom` naming a missing object or key: the container waits with
//!   reason `CreateContainerConfigError` and the message of
//!   pkg/kubelet/kubelet_pods.go makeEnvironmentVariables (`configmap "N" not found`,
//!   `couldn't find key K in ConfigMap NS/N`, the same for Secret;
//!   kuberuntime_container.go ErrCreateContainerConfig).
//!
//! Volumes come first (they are mounted before any container is configured), then the
//! init containers and the containers in order, each container's image (images.rs,
//! through the caller) before its environment. Before this the stand-in started such a
//! pod at once, so a manifest whose Secret was never created rolled out here.

use serde_json::Value;

/// A ConfigMap or a Secret of the pod's namespace, as the kubelet reads it with the
/// node's credentials: Ok(None) when the API server says it does not exist.
pub type Fetch<'a> = dyn FnMut(Kind, &str) -> Result<Option<Value>, String> + 'a;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    ConfigMap,
    Secret,
}

impl Kind {
    /// The resource's name in the API's NotFound message (`configmap "N" not found`).
    fn resource(self) -> &'static str {
        match self {
            Kind::ConfigMap => "configmap",
            Kind::Secret => "secret",
        }
    }

    /// The name the kubelet's key errors use (`couldn't find key K in ConfigMap NS/N`).
    fn title(self) -> &'static str {
        match self {
            Kind::ConfigMap => "ConfigMap",
            Kind::Secret => "Secret",
        }
    }

    /// The collection in the API path (`/api/v1/namespaces/NS/configmaps/N`).
    pub fn collection(self) -> &'static str {
        match self {
            Kind::ConfigMap => "configmaps",
            Kind::Secret => "secrets",
        }
    }
}

/// Why the kubelet does not start a pod: (container, reason, message), the container
/// being None for a volume (every container then waits).
pub type Blocked = (Option<String>, &'static str, String);

/// Whether a container's image is there (images.rs): None when it is, else the waiting
/// reason and message.
pub type ImageCheck<'a> = dyn FnMut(&Value) -> Option<(&'static str, String)> + 'a;

/// Why the kubelet would not start `pod` now, or None when nothing is missing: its
/// volumes first, then for each container in order its image (`image`) and then its
/// environment, as kuberuntime_container.go startContainer ensures the image before
/// generateContainerConfig resolves the environment.
pub fn blocked(
    pod: &Value,
    fetch: &mut Fetch<'_>,
    image: &mut ImageCheck<'_>,
) -> Result<Option<Blocked>, String> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    for v in pod["spec"]["volumes"].as_array().into_iter().flatten() {
        let volume = v["name"].as_str().unwrap_or_default();
        let mut sources: Vec<(Kind, &Value)> = Vec::new();
        if v["configMap"].is_object() {
            sources.push((Kind::ConfigMap, &v["configMap"]));
        }
        if v["secret"].is_object() {
            sources.push((Kind::Secret, &v["secret"]));
        }
        for s in v["projected"]["sources"].as_array().into_iter().flatten() {
            if s["configMap"].is_object() {
                sources.push((Kind::ConfigMap, &s["configMap"]));
            }
            if s["secret"].is_object() {
                sources.push((Kind::Secret, &s["secret"]));
            }
        }
        for (kind, source) in sources {
            let name = source["name"]
                .as_str()
                .or(source["secretName"].as_str())
                .unwrap_or_default();
            if source["optional"] != true && fetch(kind, name)?.is_none() {
                return Ok(Some((
                    None,
                    "ContainerCreating",
                    format!(
                        "MountVolume.SetUp failed for volume \"{volume}\" : {} \"{name}\" not found",
                        kind.resource()
                    ),
                )));
            }
        }
    }
    let containers = pod["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(pod["spec"]["containers"].as_array().into_iter().flatten());
    for c in containers {
        let name = c["name"].as_str().unwrap_or_default().to_string();
        if let Some((reason, message)) = image(c) {
            return Ok(Some((Some(name), reason, message)));
        }
        if let Some(message) = env_problem(ns, c, fetch)? {
            return Ok(Some((Some(name), "CreateContainerConfigError", message)));
        }
    }
    Ok(None)
}

/// The first reference of container `c`'s environment the kubelet cannot resolve, in
/// makeEnvironmentVariables' order (envFrom, then env).
fn env_problem(ns: &str, c: &Value, fetch: &mut Fetch<'_>) -> Result<Option<String>, String> {
    for from in c["envFrom"].as_array().into_iter().flatten() {
        for (kind, r) in [
            (Kind::ConfigMap, &from["configMapRef"]),
            (Kind::Secret, &from["secretRef"]),
        ] {
            let Some(name) = r["name"].as_str() else {
                continue;
            };
            if r["optional"] != true && fetch(kind, name)?.is_none() {
                return Ok(Some(format!("{} \"{name}\" not found", kind.resource())));
            }
        }
    }
    for e in c["env"].as_array().into_iter().flatten() {
        for (kind, r) in [
            (Kind::ConfigMap, &e["valueFrom"]["configMapKeyRef"]),
            (Kind::Secret, &e["valueFrom"]["secretKeyRef"]),
        ] {
            let (Some(name), Some(key)) = (r["name"].as_str(), r["key"].as_str()) else {
                continue;
            };
            if r["optional"] == true {
                continue;
            }
            let Some(object) = fetch(kind, name)? else {
                return Ok(Some(format!("{} \"{name}\" not found", kind.resource())));
            };
            if object["data"].get(key).is_none() {
                return Ok(Some(format!(
                    "couldn't find key {key} in {} {ns}/{name}",
                    kind.title()
                )));
            }
        }
    }
    Ok(None)
}

/// The status of a pod the kubelet does not start yet: Pending, every container waiting
/// (`container` with `reason` and `message`, or all with `reason` when None), the others
/// with the kubelet's default reason: `PodInitializing` in a pod with init containers,
/// else `ContainerCreating` (kubelet_pods.go convertToAPIContainerStatuses).
pub fn waiting_status(pod: &Value, container: Option<&str>, reason: &str, message: &str) -> Value {
    let mut status = pod["status"].clone();
    if !status.is_object() {
        status = serde_json::json!({});
    }
    status["phase"] = "Pending".into();
    let waiting = |list: &str, initial: &str| -> Vec<Value> {
        pod["spec"][list]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let name = c["name"].as_str().unwrap_or_default();
                let state = if container.is_none_or(|n| n == name) {
                    serde_json::json!({"waiting": {"reason": reason, "message": message}})
                } else {
                    serde_json::json!({"waiting": {"reason": initial}})
                };
                serde_json::json!({"name": name, "image": c["image"], "imageID": "",
                    "ready": false, "started": false, "restartCount": 0, "state": state})
            })
            .collect()
    };
    let initial = match pod["spec"]["initContainers"].as_array() {
        Some(list) if !list.is_empty() => "PodInitializing",
        _ => "ContainerCreating",
    };
    status["initContainerStatuses"] = waiting("initContainers", initial).into();
    status["containerStatuses"] = waiting("containers", initial).into();
    status
}

/// (container, waiting reason, message) of a status, to tell whether it needs writing
/// again (the API server may print the rest differently).
pub fn waiting(status: &Value) -> Vec<(String, String, String)> {
    ["initContainerStatuses", "containerStatuses"]
        .iter()
        .flat_map(|list| status[*list].as_array().cloned().unwrap_or_default())
        .map(|c| {
            let w = &c["state"]["waiting"];
            let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (text(&c["name"]), text(&w["reason"]), text(&w["message"]))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fetch_from(
        objects: Vec<(Kind, &'static str, Value)>,
    ) -> impl FnMut(Kind, &str) -> Result<Option<Value>, String> {
        move |kind, name| {
            Ok(objects
                .iter()
                .find(|(k, n, _)| *k == kind && *n == name)
                .map(|(_, _, v)| v.clone()))
        }
    }

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "shop"}, "spec": spec})
    }

    /// A pod whose Secret, ConfigMap or key does not exist is not started, with the
    /// kubelet's reason and words; optional references and present objects let it start.
    #[test]
    fn missing_configmaps_secrets_and_keys_keep_the_pod_waiting() {
        let root_ca = (
            Kind::ConfigMap,
            "kube-root-ca.crt",
            json!({"data": {"ca.crt": "x"}}),
        );
        let token_volume = json!({"name": "kube-api-access-1", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}]}});
        let env = json!([{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]);
        let p = pod(json!({"volumes": [token_volume],
            "containers": [{"name": "app", "image": "i", "env": env}]}));

        // No kube-root-ca.crt yet (a new namespace): the token volume cannot be set up.
        let got = blocked(&p, &mut fetch_from(vec![]), &mut |_| None).unwrap();
        assert_eq!(
            got,
            Some((
                None,
                "ContainerCreating",
                "MountVolume.SetUp failed for volume \"kube-api-access-1\" : configmap \"kube-root-ca.crt\" not found".to_string()
            ))
        );
        // The Secret missing, then without the key, then there.
        let got = blocked(&p, &mut fetch_from(vec![root_ca.clone()]), &mut |_| None).unwrap();
        assert_eq!(
            got,
            Some((
                Some("app".to_string()),
                "CreateContainerConfigError",
                "secret \"db\" not found".to_string()
            ))
        );
        let other_key = (Kind::Secret, "db", json!({"data": {"user": "eA=="}}));
        let got = blocked(
            &p,
            &mut fetch_from(vec![root_ca.clone(), other_key]),
            &mut |_| None,
        )
        .unwrap();
        assert_eq!(
            got.unwrap().2,
            "couldn't find key password in Secret shop/db"
        );
        let secret = (Kind::Secret, "db", json!({"data": {"password": "eA=="}}));
        assert_eq!(
            blocked(
                &p,
                &mut fetch_from(vec![root_ca.clone(), secret]),
                &mut |_| None
            )
            .unwrap(),
            None
        );

        // envFrom and a secret volume; optional ones do not count.
        let p = pod(json!({
            "volumes": [{"name": "certs", "secret": {"secretName": "tls"}},
                        {"name": "extra", "configMap": {"name": "maybe", "optional": true}}],
            "initContainers": [{"name": "init", "image": "i",
                "envFrom": [{"configMapRef": {"name": "settings"}}]}],
            "containers": [{"name": "app", "image": "i"}]}));
        let got = blocked(&p, &mut fetch_from(vec![]), &mut |_| None)
            .unwrap()
            .unwrap();
        assert_eq!(
            got.2,
            "MountVolume.SetUp failed for volume \"certs\" : secret \"tls\" not found"
        );
        let tls = (Kind::Secret, "tls", json!({"data": {}}));
        let got = blocked(&p, &mut fetch_from(vec![tls]), &mut |_| None)
            .unwrap()
            .unwrap();
        assert_eq!(
            got,
            (
                Some("init".to_string()),
                "CreateContainerConfigError",
                "configmap \"settings\" not found".to_string()
            )
        );

        // The status: Pending, the container waiting with the reason, the others not started.
        let s = waiting_status(&p, Some("init"), "CreateContainerConfigError", &got.2);
        assert_eq!(s["phase"], "Pending");
        assert_eq!(
            s["initContainerStatuses"][0]["state"]["waiting"]["reason"],
            "CreateContainerConfigError"
        );
        assert_eq!(
            s["containerStatuses"][0]["state"]["waiting"]["reason"],
            "PodInitializing"
        );
        assert_eq!(
            waiting(&s),
            [
                (
                    "init".into(),
                    "CreateContainerConfigError".into(),
                    got.2.clone()
                ),
                ("app".into(), "PodInitializing".into(), String::new())
            ]
        );
        assert!(waiting(&json!({})).is_empty());
    }

    /// Each container's image is ensured before its environment is resolved, volumes
    /// before both (startContainer: EnsureImageExists, then generateContainerConfig);
    /// the other containers of a pod without init containers wait `ContainerCreating`.
    #[test]
    fn a_container_s_image_comes_before_its_environment_and_after_the_volumes() {
        let p = pod(json!({
            "volumes": [{"name": "certs", "secret": {"secretName": "tls"}}],
            "containers": [
                {"name": "app", "image": "app:1",
                 "envFrom": [{"configMapRef": {"name": "settings"}}]},
                {"name": "side", "image": "side:1"}]}));
        let mut missing =
            |c: &Value| (c["image"] == "app:1").then(|| ("ErrImagePull", "not found".to_string()));
        let got = blocked(&p, &mut fetch_from(vec![]), &mut missing)
            .unwrap()
            .unwrap();
        assert_eq!(got.1, "ContainerCreating", "volumes first: {got:?}");
        let tls = (Kind::Secret, "tls", json!({"data": {}}));
        let got = blocked(&p, &mut fetch_from(vec![tls.clone()]), &mut missing)
            .unwrap()
            .unwrap();
        assert_eq!(
            got,
            (Some("app".into()), "ErrImagePull", "not found".into())
        );
        let got = blocked(&p, &mut fetch_from(vec![tls]), &mut |_| None)
            .unwrap()
            .unwrap();
        assert_eq!(got.1, "CreateContainerConfigError");
        let s = waiting_status(&p, Some("app"), "ErrImagePull", "not found");
        assert_eq!(
            waiting(&s),
            [
                ("app".into(), "ErrImagePull".into(), "not found".into()),
                ("side".into(), "ContainerCreating".into(), String::new())
            ]
        );
    }
}
