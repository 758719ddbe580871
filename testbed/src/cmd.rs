//! Running the machine's tools (ip, ssh-keygen, nsenter) with errors that carry the
//! command line and its stderr.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::error::{Error, Result};

/// Renders a command for error messages.
pub fn display(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&shlex::try_quote(&a.to_string_lossy()).unwrap_or_default());
    }
    s
}

/// Runs `cmd` to completion with `stdin` fed in, returning its output whatever the status.
pub fn output(cmd: &mut Command, stdin: Option<&[u8]>) -> Result<Output> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        command: display(cmd),
        source,
    })?;
    if let Some(data) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        let data = data.to_vec();
        // A writer thread, so a command that prints a lot before reading cannot deadlock.
        let writer = std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
        let out = child.wait_with_output();
        let _ = writer.join();
        return out.map_err(|source| Error::Spawn {
            command: display(cmd),
            source,
        });
    }
    child.wait_with_output().map_err(|source| Error::Spawn {
        command: display(cmd),
        source,
    })
}

/// Runs `cmd`, failing unless it exits 0. Returns stdout.
pub fn run(cmd: &mut Command) -> Result<String> {
    run_with_input(cmd, None)
}

/// Like [`run`] with data on stdin.
pub fn run_with_input(cmd: &mut Command, stdin: Option<&[u8]>) -> Result<String> {
    let out = output(cmd, stdin)?;
    if !out.status.success() {
        return Err(Error::Command {
            command: display(cmd),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip ARGS...`, failing with ip's own message.
pub fn ip(args: &[&str]) -> Result<String> {
    run(Command::new("ip").args(args))
}

/// `ip -batch -` with the given lines: one process for many changes.
pub fn ip_batch(netns: Option<&str>, lines: &[String]) -> Result<()> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    cmd.args(["-batch", "-"]);
    let input = lines.join("\n") + "\n";
    run_with_input(&mut cmd, Some(input.as_bytes())).map(|_| ())
}
