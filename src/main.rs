//! The `qeval` binary: parse flags, dispatch, map the outcome to an exit code.

use clap::Parser;
use qeval::cli::{Cli, Command};
use qeval::error;

fn main() {
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            error::exit_code(&e)
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(args) => {
            let threads = args
                .machine
                .threads
                .unwrap_or_else(qeval::threads::default_threads);
            qeval::threads::apply(threads);
            let plan = qeval::plan::Plan::from_args(&args, threads)?;
            qeval::runner::execute(&plan)
        }
        Command::Bench(args) => {
            let threads = args
                .machine
                .threads
                .unwrap_or_else(qeval::threads::default_threads);
            qeval::threads::apply(threads);
            let plan = qeval::plan::Plan::for_bench(&args, threads)?;
            qeval::runner::execute(&plan)
        }
        Command::Models { models } => {
            let c = qeval::catalog::Catalog::load(models.as_deref())?;
            print!("{}", qeval::report::table::models_table(&c));
            Ok(0)
        }
        Command::Report {
            results,
            out,
            options,
        } => qeval::report::rerender(&results, out.as_deref(), &options),
        Command::Level { job } => {
            qeval::level_worker::run(&job)?;
            Ok(0)
        }
    }
}
