//! `folio`: document OCR and parsing. See `folio --help` and README.md.

mod cli;
mod runtime;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_tracing(args.verbose);
    match cli::run(args) {
        Ok(code) => code.into(),
        Err(err) => {
            eprintln!("folio: {:#}", err.error);
            err.code.into()
        }
    }
}
