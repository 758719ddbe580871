//! The host's first process and sshd's forced command. Owned by the host manager.

/// `tb-sim init`: sets up the host's mounts and hostname, starts sshd, and then stays
/// alive holding the host's namespaces.
pub fn init(_args: &[String]) -> i32 {
    todo!("host init")
}

/// `tb-sim audit-shell`: sshd's ForceCommand. Logs $SSH_ORIGINAL_COMMAND and runs it.
pub fn audit_shell(_args: &[String]) -> i32 {
    todo!("audit shell")
}
