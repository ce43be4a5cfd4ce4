use std::io::Write;

use clap::Parser;
use sysctune::report::escape::safe_lines;

/// Write to stderr, ignoring failure: with stderr closed or full there is nowhere left to
/// report to, and `eprintln!` would panic (exit 101) instead of returning the exit code.
/// Messages quote paths and values from untrusted files: terminal controls are escaped.
fn say(text: &str) {
    let _ = std::io::stderr().lock().write_all(safe_lines(text).as_bytes());
}

fn main() {
    sysctune::crash::install_hook();
    let cli = match sysctune::cli::Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version go to stdout as clap prints them; errors are escaped like ours.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            std::process::exit(e.exit_code());
        }
        Err(e) => {
            say(&e.render().to_string());
            std::process::exit(e.exit_code());
        }
    };
    let code = match sysctune::crash::catch(|| sysctune::app::run(&cli)) {
        Ok(Ok(out)) => {
            say(&out.stderr);
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`sysctune plan | head`) is not an error.
            match stdout
                .write_all(out.stdout.as_bytes())
                .and_then(|_| stdout.flush())
            {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    say(&format!(
                        "sysctune: error: writing output: {}\n",
                        sysctune::error::describe_io(&e)
                    ));
                    2
                }
                _ => out.code,
            }
        }
        Ok(Err(e)) => {
            say(&format!("sysctune: error: {e}\n"));
            e.exit_code()
        }
        Err(panic) => {
            say(&format!(
                "sysctune: internal error: {panic}; please report it with the command that caused it\n"
            ));
            2
        }
    };
    std::process::exit(code);
}
