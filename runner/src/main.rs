//! The `runner` binary: parses the command line and reports any error the way a user can act on it.

fn main() {
    if let Err(err) = runner::cli::run() {
        eprintln!("Error: {err:#}");
        std::process::exit(1);
    }
}
