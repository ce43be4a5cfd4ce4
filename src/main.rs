use std::io::Write;

use clap::Parser;

fn main() {
    let cli = sysctune::cli::Cli::parse();
    let code = match sysctune::app::run(&cli) {
        Ok(out) => {
            eprint!("{}", out.stderr);
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`sysctune plan | head`) is not an error.
            match stdout
                .write_all(out.stdout.as_bytes())
                .and_then(|_| stdout.flush())
            {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    eprintln!("sysctune: error: writing output: {e}");
                    2
                }
                _ => out.code,
            }
        }
        Err(e) => {
            eprintln!("sysctune: error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
