//! The command line as a CI job sees it: completions, the man page, `BOOTSTRAP_*`
//! variables for every option, and no prompt when nobody can answer.
//!
//! These run the built binary without root and without hosts: every case fails or
//! finishes before anything connects.

mod support;

use support::{run_bootstrap, Env, Ran};

/// The subcommands whose options must all read a `BOOTSTRAP_*` variable.
// `kubeconfig` is left out until its -o/--merge read one too (src/kubeconfig.rs).
const SUBCOMMANDS: [&str; 6] = ["up", "plan", "validate", "reset", "kubeconfig", "status"];

/// `bootstrap ARGS` from support's clean slate without CI (these tests check what CI
/// changes), plus `env`.
fn run(args: &[&str], env: Env) -> Ran {
    let mut all = vec![("CI", None)];
    all.extend(env);
    run_bootstrap(args, &all)
}

#[test]
fn bash_completions_name_the_command_and_its_subcommands() {
    let Ran {
        code,
        stdout,
        stderr,
    } = run(&["completions", "bash"], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("complete -F _bootstrap"), "{stdout}");
    for sub in SUBCOMMANDS
        .iter()
        .chain(&["kubeconfig", "completions", "man"])
    {
        assert!(stdout.contains(sub), "no `{sub}` in:\n{stdout}");
    }
}

#[test]
fn every_shell_gets_completions() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let Ran {
            code,
            stdout,
            stderr,
        } = run(&["completions", shell], &[]);
        assert_eq!(code, Some(0), "{shell}: {stderr}");
        assert!(stdout.contains("bootstrap"), "{shell}: {stdout}");
    }
    let Ran { code, stderr, .. } = run(&["completions", "tcsh"], &[]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("invalid value 'tcsh'"), "{stderr}");
}

#[test]
fn man_page_is_roff_and_lists_the_subcommands() {
    let Ran {
        code,
        stdout,
        stderr,
    } = run(&["man"], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    // clap_mangen puts two string definitions (`.ie`/`.el`) before the title.
    let title = stdout
        .lines()
        .find(|l| !l.starts_with(".ie") && !l.starts_with(".el"));
    assert!(
        title.is_some_and(|l| l.starts_with(".TH bootstrap 1")),
        "{stdout}"
    );
    assert!(stdout.contains(".SH SUBCOMMANDS"), "{stdout}");
    for sub in SUBCOMMANDS {
        assert!(
            stdout.contains(&format!("bootstrap\\-{sub}(1)")),
            "{sub}: {stdout}"
        );
    }
    assert!(stdout.contains("BOOTSTRAP_VERBOSE"), "{stdout}");
}

#[test]
fn man_page_of_a_subcommand() {
    let Ran {
        code,
        stdout,
        stderr,
    } = run(&["man", "up"], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains(".TH bootstrap-up 1"), "{stdout}");
    assert!(stdout.contains("BOOTSTRAP_TIMEOUT"), "{stdout}");

    let Ran {
        code,
        stdout,
        stderr,
    } = run(&["man", "nope"], &[]);
    assert_ne!(code, Some(0));
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("`nope` is not a bootstrap subcommand"),
        "{stderr}"
    );
    assert!(stderr.contains("up, plan, reset"), "{stderr}");
}

#[test]
fn the_environment_sets_a_flag() {
    let Ran { code, stderr, .. } = run(
        &["up", "inventory.example"],
        &[("BOOTSTRAP_TIMEOUT", Some("abc"))],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("invalid duration `abc`"), "{stderr}");
    assert!(stderr.contains("--timeout"), "{stderr}");

    // The command line wins over the environment.
    let Ran { code, stderr, .. } = run(
        &["up", "i.yaml", "--parallelism", "0"],
        &[("BOOTSTRAP_PARALLELISM", Some("8"))],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("'0'"), "{stderr}");
}

#[test]
fn the_environment_names_the_inventory() {
    let Ran {
        code,
        stdout,
        stderr,
    } = run(
        &["validate"],
        &[("BOOTSTRAP_INVENTORY", Some("inventory.example"))],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("inventory.example: OK"), "{stdout}");
}

/// BOOTSTRAP_OUTPUT=json is `up`'s too (no --dry-run needed): even a run that cannot read
/// its inventory prints its one JSON document, and the message stays on stderr.
#[test]
fn the_output_variable_makes_up_print_json() {
    let Ran {
        code,
        stdout,
        stderr,
    } = run(
        &["up", "/nonexistent/inventory.yaml"],
        &[("BOOTSTRAP_OUTPUT", Some("json"))],
    );
    assert!(!stderr.contains("--dry-run"), "{stderr}");
    assert!(stderr.contains("cannot read the inventory"), "{stderr}");
    assert_eq!(code, Some(1));
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(doc["schema"], "bootstrap/up/v1");
    assert_eq!(doc["exit_code"], 1);
}

#[test]
fn every_option_has_an_environment_variable() {
    for sub in SUBCOMMANDS {
        let Ran {
            code,
            stdout,
            stderr,
        } = run(&[sub, "--help"], &[]);
        assert_eq!(code, Some(0), "{sub}: {stderr}");
        // An argument's entry is its line plus, when clap puts help text on the lines
        // below (it does for every argument once one help text is long), those lines.
        let lines: Vec<&str> = stdout.lines().collect();
        let is_arg = |line: &str| {
            let entry = line.trim_start();
            line.starts_with("  ")
                && !line.starts_with("          ")
                && (entry.starts_with('-') || entry.starts_with('<'))
        };
        let mut seen = 0;
        for (i, line) in lines.iter().enumerate() {
            let entry = line.trim_start();
            if !is_arg(line)
                || entry.starts_with("-h, --help")
                || entry.starts_with("-V, --version")
            {
                continue;
            }
            let block: Vec<&str> = lines[i..]
                .iter()
                .take_while(|l| !l.trim().is_empty())
                .enumerate()
                .take_while(|(j, l)| *j == 0 || !is_arg(l))
                .map(|(_, l)| *l)
                .collect();
            assert!(
                block.join(" ").contains("[env: BOOTSTRAP_"),
                "{sub}: no variable for `{line}`"
            );
            seen += 1;
        }
        assert!(seen >= 2, "{sub}: found no arguments in:\n{stdout}");
    }
}

#[test]
fn reset_does_not_wait_for_an_answer_nobody_can_give() {
    // stdin is /dev/null here: not a terminal.
    let Ran { code, stderr, .. } = run(&["reset", "inventory.example"], &[]);
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("refusing to reset without confirmation"),
        "{stderr}"
    );
    assert!(stderr.contains("not a terminal"), "{stderr}");

    let Ran { code, stderr, .. } = run(&["reset", "inventory.example"], &[("CI", Some("true"))]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("CI is set"), "{stderr}");
}
