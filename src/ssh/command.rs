//! The exec string sent over SSH, and recognising `sudo -n` refusing to run it.
//!
//! The SSH server hands the exec string to the login user's shell as `$SHELL -c
//! <string>`, so a script must travel as ONE properly quoted word: `sh -c '<script>'`.
//! The login shell strips that one level of quoting and `sh` gets the script byte for
//! byte. With `sudo -n` in front, sudo receives the same argument vector, so no second
//! level of quoting is needed (and adding one would be wrong).

/// Why a script cannot be sent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the script contains a NUL byte, which no shell command line can carry")]
pub struct NulInScript;

/// The exec string for `script`: `sh -c '<script>'`, or `sudo -n sh -c '<script>'` when
/// it must run as root and the login user is not root.
pub fn exec_string(script: &str, root: bool, login_user: &str) -> Result<String, NulInScript> {
    let quoted = shlex::try_quote(script).map_err(|_| NulInScript)?;
    Ok(if root && login_user != "root" {
        format!("sudo -n sh -c {quoted}")
    } else {
        format!("sh -c {quoted}")
    })
}

/// When a `sudo -n` wrapped command failed because of sudo itself (not the script),
/// the reason, so the caller can turn it into `SshError::Sudo`. sudo's own messages come
/// first on stderr, each prefixed `sudo: ` (possibly after warnings such as `sudo: unable
/// to resolve host`); the script's output never precedes them.
pub fn sudo_failure(status: u32, stderr: &str, user: &str) -> Option<String> {
    if status == 0 {
        return None;
    }
    let first = stderr.lines().next().unwrap_or("").trim();
    // `sh: 1: sudo: not found` (dash) / `bash: sudo: command not found`.
    if status == 127 && first.contains("sudo") && first.contains("not found") {
        return Some(format!(
            "sudo is not installed ({first}); install it or connect as root"
        ));
    }
    const SUDO_REFUSALS: &[&str] = &[
        "a password is required",
        "a terminal is required",
        "is not in the sudoers file",
        "is not allowed to execute",
        "is not allowed to run sudo",
        "account validation failure",
        "you must have a tty",
    ];
    let refusal = stderr
        .lines()
        .map(str::trim)
        .take_while(|l| l.starts_with("sudo: "))
        .find(|l| SUDO_REFUSALS.iter().any(|m| l.contains(m)))?;
    Some(format!(
        "{refusal}; allow it passwordless (e.g. `{user} ALL=(ALL) NOPASSWD:ALL` in a file \
         under /etc/sudoers.d/) or connect as root"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a POSIX login shell does with the exec string: split it into words.
    fn words(exec: &str) -> Vec<String> {
        shlex::split(exec).expect("valid shell words")
    }

    #[test]
    fn root_login_runs_sh_directly() {
        let e = exec_string("id -u", true, "root").unwrap();
        assert_eq!(words(&e), ["sh", "-c", "id -u"]);
    }

    #[test]
    fn non_root_root_command_goes_through_sudo_n() {
        let e = exec_string("id -u", true, "ubuntu").unwrap();
        assert_eq!(words(&e), ["sudo", "-n", "sh", "-c", "id -u"]);
        let e = exec_string("id -u", false, "ubuntu").unwrap();
        assert_eq!(words(&e), ["sh", "-c", "id -u"]);
    }

    #[test]
    fn torture_scripts_survive_one_level_of_shell_parsing() {
        for script in [
            "echo 'single' \"double\" $HOME `id` \\ back\\slash",
            "printf '%s\\n' \"$1\"\nline two\n\ttabbed",
            "echo it's; echo \"a\\\"b\"; echo $'x'",
            "!bang ^caret {brace,list} *glob? ~tilde #hash",
            "",
            "ünïcødé 字",
        ] {
            let e = exec_string(script, true, "ubuntu").unwrap();
            assert_eq!(words(&e)[4], script, "exec string: {e}");
        }
    }

    #[test]
    fn nul_is_refused() {
        assert_eq!(exec_string("a\0b", false, "root"), Err(NulInScript));
    }

    #[test]
    fn sudo_refusals_are_recognised() {
        assert!(sudo_failure(1, "sudo: a password is required\n", "ubuntu")
            .is_some_and(|r| r.contains("`ubuntu ALL=(ALL) NOPASSWD:ALL`")));
        assert!(sudo_failure(
            1,
            "sudo: ubuntu is not in the sudoers file.  This incident will be reported.\n",
            "ubuntu"
        )
        .is_some());
        assert!(sudo_failure(127, "sh: 1: sudo: not found\n", "u").is_some());
        // After sudo's own warnings.
        assert!(sudo_failure(
            1,
            "sudo: unable to resolve host node1: Name or service not known\n\
             sudo: a password is required\n",
            "u"
        )
        .is_some_and(|r| r.starts_with("sudo: a password is required")));
        assert!(sudo_failure(
            3,
            "sudo: unable to resolve host node1: Name or service not known\nscript error\n",
            "u"
        )
        .is_none());
        // The script's own failures are not sudo's.
        assert!(sudo_failure(1, "E: Unable to locate package foo\n", "u").is_none());
        assert!(sudo_failure(0, "sudo: a password is required\n", "u").is_none());
        assert!(sudo_failure(2, "kubeadm: error\nsudo: a password is required", "u").is_none());
    }
}
