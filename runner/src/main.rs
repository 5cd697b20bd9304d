//! The `runner` binary: parses the command line and reports any error the way a user can act on it.
//!
//! A reader that goes away (`runner … | head`) is not an error: like ripgrep and hyperfine, runner then
//! exits quietly with status 0. Output reaches stdout through `println!`, which panics on a write error, so
//! the panic hook recognises that one panic (standard library message, broken pipe) and exits instead;
//! an `io::Error` of kind `BrokenPipe` returned up to here is treated the same. Results are on disk before
//! anything is printed, so nothing is lost.

use std::io::ErrorKind;

fn main() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if is_stdout_closed(info.payload_as_str()) {
            std::process::exit(0);
        }
        default_hook(info);
    }));
    if let Err(err) = runner::cli::run() {
        let reader_gone = err
            .chain()
            .any(|cause| cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == ErrorKind::BrokenPipe));
        if reader_gone {
            std::process::exit(0);
        }
        if let Some(stopped) = err.downcast_ref::<runner::cli::Interrupted>() {
            eprintln!("Interrupted: {}", runner::terminal::escape_block(&stopped.to_string()));
            std::process::exit(runner::interrupt::EXIT_INTERRUPTED);
        }
        if let Some(partial) = err.downcast_ref::<runner::cli::SamplesFailed>() {
            eprintln!("Warning: {}", runner::terminal::escape_block(&partial.to_string()));
            std::process::exit(runner::cli::EXIT_SAMPLES_FAILED);
        }
        eprintln!("Error: {}", runner::terminal::escape_block(&format!("{err:#}")));
        std::process::exit(1);
    }
}

/// Whether a panic is `println!` failing because stdout's reader has gone (`failed printing to stdout:
/// Broken pipe (os error 32)`).
fn is_stdout_closed(message: Option<&str>) -> bool {
    message.is_some_and(|m| {
        m.starts_with("failed printing to stdout") && (m.contains("os error 32") || m.contains("Broken pipe"))
    })
}
