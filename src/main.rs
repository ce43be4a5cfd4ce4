use std::io::Write;

use clap::Parser;
use sysctune::exit::Exit;
use sysctune::report::escape::safe_lines;

/// Write to stderr, ignoring failure: with stderr closed or full there is nowhere left to
/// report to, and `eprintln!` would panic (exit 101) instead of returning the exit code.
/// Messages quote paths and values from untrusted files: terminal controls are escaped.
fn say(text: &str) {
    let _ = std::io::stderr().lock().write_all(safe_lines(text).as_bytes());
}

/// With `--format json` an error is also a `sysctune/error/v1` document on stdout, so a
/// script that parses stdout always gets JSON.
fn error_json(wanted: bool, message: &str, code: i32) {
    if wanted {
        let doc = sysctune::report::documents::ErrorDoc {
            schema: sysctune::report::documents::ERROR_SCHEMA,
            error: message.trim_end(),
            exit: code,
        };
        let _ = std::io::stdout()
            .lock()
            .write_all(sysctune::report::json(&doc).as_bytes());
    }
}

/// `--format json` on the command line, for errors before or while the flags are parsed.
fn json_asked() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2).any(|w| w[0] == "--format" && w[1] == "json") || args.iter().any(|a| a == "--format=json")
}

fn main() {
    sysctune::crash::install_hook();
    let cli = match sysctune::cli::Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version go to stdout as clap prints them; errors are escaped like ours.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            std::process::exit(Exit::Ok.code());
        }
        Err(e) => {
            let text = e.render().to_string();
            say(&text);
            // clap's usage errors exit 2, like every sysctune error.
            error_json(
                json_asked(),
                text.trim_start_matches("error: "),
                Exit::Failed.code(),
            );
            std::process::exit(Exit::Failed.code());
        }
    };
    let json = cli.global.format() == sysctune::cli::Format::Json;
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
                    Exit::Failed.code()
                }
                _ => out.exit.code(),
            }
        }
        Ok(Err(e)) => {
            say(&format!("sysctune: error: {e}\n"));
            error_json(json, &e.to_string(), Exit::Failed.code());
            Exit::Failed.code()
        }
        Err(panic) => {
            let message =
                format!("internal error: {panic}; please report it with the command that caused it");
            say(&format!("sysctune: {message}\n"));
            error_json(json, &message, Exit::Failed.code());
            Exit::Failed.code()
        }
    };
    std::process::exit(code);
}
