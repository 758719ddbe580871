//! Phase `join-token`: a fresh, short-lived join command from the control plane.
//!
//! `kubeadm token create --print-join-command --ttl 15m` prints ONE line (with a trailing
//! space): `kubeadm join HOST:PORT --token ID.SECRET --discovery-token-ca-cert-hash
//! sha256:HEX` (reference §4). We never parse `kubeadm init`'s own output (it wraps the
//! command over lines), and never reuse an old token: each run that joins hosts makes a
//! new one that expires on its own ([`ttl_minutes`]: 15 minutes for each `--parallelism`
//! hosts that join) and deletes it when it ends. The line is a secret: it reaches the
//! workers only inside a RemoteCommand whose `secrets` name it, and never the terminal or
//! the run log.

use std::fmt;
use std::sync::Arc;

use super::{Ctx, Failure, HostFuture};
use crate::ssh::RemoteCommand;

/// How long one `kubeadm join` may need the token, in minutes: kubeadm's own limits for
/// discovery (5 m), the kubelet health check (4 m) and the TLS bootstrap (5 m)
/// (cmd/kubeadm/app/constants DiscoveryTimeout, KubeletHealthCheckTimeout,
/// TLSBootstrapTimeout), rounded up. After the TLS bootstrap the node has its own
/// certificate and no longer uses the token.
const JOIN_WINDOW_MINUTES: usize = 15;

/// The join token's TTL in minutes for `joins` hosts joining at most `parallelism` at a
/// time: one join window per round of joins, so the token outlives the last join that
/// starts (`--parallelism 64` and 200 workers: 4 rounds, 60 minutes; a flat 15 minutes
/// expired before the later rounds started and their `kubeadm join` failed discovery).
/// The run deletes the token when it ends; the TTL only bounds an interrupted run's.
pub fn ttl_minutes(joins: usize, parallelism: usize) -> usize {
    joins.div_ceil(parallelism.max(1)).max(1) * JOIN_WINDOW_MINUTES
}

/// A validated worker join command. Debug/Display never show the token.
#[derive(Clone, PartialEq)]
pub struct JoinCommand {
    /// The whole line, trimmed.
    pub line: String,
    /// `HOST:PORT` of the API server.
    pub endpoint: String,
    /// `ID.SECRET`.
    pub token: String,
    /// `sha256:HEX`.
    pub ca_cert_hash: String,
}

impl fmt::Debug for JoinCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JoinCommand({self})")
    }
}

impl fmt::Display for JoinCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kubeadm join {} --token <redacted> --discovery-token-ca-cert-hash {}",
            self.endpoint, self.ca_cert_hash
        )
    }
}

impl JoinCommand {
    /// The strings that must never reach a log: the token, its secret half, the line.
    pub fn secrets(&self) -> Vec<String> {
        let mut s = vec![self.line.clone(), self.token.clone()];
        if let Some((_, secret)) = self.token.split_once('.') {
            s.push(secret.to_string());
        }
        s
    }
}

/// Whether `t` has the shape of a bootstrap token.
pub fn is_token(t: &str) -> bool {
    // bootstrap token format: [a-z0-9]{6}\.[a-z0-9]{16}
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    matches!(t.split_once('.'), Some((id, secret)) if ok(id, 6) && ok(secret, 16))
}

fn is_ca_hash(h: &str) -> bool {
    matches!(h.strip_prefix("sha256:"), Some(hex) if hex.len() == 64
        && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

fn is_endpoint(e: &str) -> bool {
    match e.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && port.parse::<u16>().is_ok_and(|p| p > 0)
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b))
        }
        None => false,
    }
}

/// Validates what `kubeadm token create --print-join-command` printed. Errors describe
/// the shape only, never the text (it may hold a token).
pub fn parse(stdout: &str) -> Result<JoinCommand, String> {
    let line = stdout.trim();
    let shape_error = |what: &str| {
        format!(
            "`kubeadm token create --print-join-command` printed something unexpected \
             ({what}; {} bytes, content withheld because it may contain a token)",
            stdout.len()
        )
    };
    if line.lines().count() != 1 {
        return Err(shape_error("not exactly one line"));
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.len() != 7 || words[0] != "kubeadm" || words[1] != "join" {
        return Err(shape_error(
            "expected `kubeadm join HOST:PORT --token T --discovery-token-ca-cert-hash H`",
        ));
    }
    let endpoint = words[2];
    if !is_endpoint(endpoint) {
        return Err(shape_error("the API server endpoint is not HOST:PORT"));
    }
    let (mut token, mut hash) = (None, None);
    for pair in words[3..].chunks(2) {
        match pair[0] {
            "--token" => token = Some(pair[1]),
            "--discovery-token-ca-cert-hash" => hash = Some(pair[1]),
            _ => return Err(shape_error("an unexpected flag")),
        }
    }
    let token = token
        .filter(|t| is_token(t))
        .ok_or_else(|| shape_error("no valid --token"))?;
    let hash = hash
        .filter(|h| is_ca_hash(h))
        .ok_or_else(|| shape_error("no valid --discovery-token-ca-cert-hash sha256:<64 hex>"))?;
    Ok(JoinCommand {
        line: line.to_string(),
        endpoint: endpoint.to_string(),
        token: token.to_string(),
        ca_cert_hash: hash.to_string(),
    })
}

/// The command run on the first control plane, for a token of `ttl` minutes.
pub fn command(ttl: usize) -> RemoteCommand {
    RemoteCommand {
        script: format!("kubeadm token create --print-join-command --ttl {ttl}m"),
        root: true,
        ..Default::default()
    }
}

/// `kubeadm token delete ID` on the first control plane when the run's phases are over
/// (whatever their outcome; `up` calls it after the last phase, not right after the join
/// phase): the token was for this run only. Only the ID, which is not
/// secret (it names the token's Secret, `bootstrap-token-ID`), is on the command line.
/// A failure is only a warning: the token expires on its own after [`ttl_minutes`].
pub async fn delete(ctx: &Ctx) {
    let Some(join) = ctx.join.lock().unwrap().clone() else {
        return;
    };
    let Some((id, _)) = join.token.split_once('.') else {
        return;
    };
    let cmd = RemoteCommand {
        script: format!("kubeadm token delete {id}"),
        root: true,
        ..Default::default()
    };
    let cp = ctx.first_cp.clone();
    if let Err(f) = ctx.exec(&cp, &cp, "kubeadm token delete", &cmd).await {
        ctx.progress.info(&format!(
            "{cp}: could not delete this run's join token ({}); it expires on its own \
             {}m after it was made",
            f.message,
            run_ttl(ctx)
        ));
    }
}

/// This run's token TTL: its joining hosts at `--parallelism` at a time.
fn run_ttl(ctx: &Ctx) -> usize {
    ttl_minutes(ctx.plan.join.len(), ctx.parallelism)
}

/// Only the first control plane, and only when some host joins in this run.
pub fn hosts(ctx: &Ctx) -> Vec<String> {
    if ctx.plan.join.is_empty() {
        Vec::new()
    } else {
        vec![ctx.first_cp.clone()]
    }
}

pub fn run(ctx: Arc<Ctx>, host: String) -> HostFuture {
    Box::pin(async move {
        let step = "kubeadm token create";
        // The output is secret but unknown before the command runs: don't let the
        // generic runner log it; log it here once the secrets are known.
        let command = command(run_ttl(&ctx));
        let out = ctx.exec_unlogged(&host, &host, step, &command).await?;
        let parsed = parse(&out.stdout);
        let mut logged = command;
        if let Ok(join) = &parsed {
            logged.secrets = join.secrets();
        } else {
            // Unknown shape: keep the output out of the log entirely.
            logged.secrets = vec![out.stdout.trim().to_string()];
        }
        ctx.record(&host, step, &logged, &out);
        if !out.success() {
            return Err(Failure::exit(step, &out, &logged.secrets));
        }
        let join = parsed.map_err(|e| Failure::new(step, e))?;
        *ctx.join.lock().unwrap() = Some(join);
        Ok(false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn the_token_lives_one_join_window_per_round_of_joins() {
        // Up to --parallelism joining hosts: one round, kubeadm's 15 minutes.
        assert_eq!(ttl_minutes(1, 64), 15);
        assert_eq!(ttl_minutes(64, 64), 15);
        // 200 workers, 64 at a time: the fourth round starts after three rounds that may
        // each take kubeadm join's 14 minutes.
        assert_eq!(ttl_minutes(200, 64), 60);
        assert_eq!(ttl_minutes(3, 1), 45);
        assert_eq!(ttl_minutes(5, 0), 75);
        assert!(command(ttl_minutes(200, 64))
            .script
            .ends_with("kubeadm token create --print-join-command --ttl 60m"));
    }

    #[test]
    fn parses_the_real_line() {
        let out = format!("kubeadm join 10.0.0.10:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash {HASH} \n");
        let j = parse(&out).unwrap();
        assert_eq!(j.endpoint, "10.0.0.10:6443");
        assert_eq!(j.token, "abcdef.0123456789abcdef");
        assert_eq!(j.ca_cert_hash, HASH);
        assert!(j.secrets().contains(&"0123456789abcdef".to_string()));
        assert!(!format!("{j:?} {j}").contains("0123456789abcdef "));
        assert!(!format!("{j:?}").contains("abcdef.0123456789abcdef"));
    }

    #[test]
    fn rejects_other_shapes_without_echoing_them() {
        let secret = "abcdef.0123456789abcdef";
        for bad in [
            String::new(),
            "error: failed to load admin kubeconfig".to_string(),
            format!("kubeadm join 10.0.0.10:6443 --token {secret} \\\n --discovery-token-ca-cert-hash {HASH}"),
            format!("kubeadm join 10.0.0.10:6443 --token ABCDEF.0123456789abcdef --discovery-token-ca-cert-hash {HASH}"),
            format!("kubeadm join 10.0.0.10 --token {secret} --discovery-token-ca-cert-hash {HASH}"),
            format!("kubeadm join 10.0.0.10:6443 --token {secret} --discovery-token-ca-cert-hash sha256:abc"),
            format!("kubeadm join 10.0.0.10:6443 --token {secret} --discovery-token-ca-cert-hash {HASH} --control-plane --certificate-key x"),
            format!("kubeadm join 10.0.0.10:6443 --token {secret} --token {secret} ; rm -rf /"),
        ] {
            let err = parse(&bad).unwrap_err();
            assert!(!err.contains(secret), "{err}");
        }
    }
}
