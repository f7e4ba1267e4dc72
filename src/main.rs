//! The `qeval` binary: parse flags, dispatch, map the outcome to an exit code. The stages of a
//! run follow the data flow: plan (flags → what to measure, no I/O) → locate (fetch the files)
//! → run (levels, in worker processes) → results and reports.

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
    // A bare `qeval` is `qeval run` with no flags: the offline demo.
    match cli.command_or_demo() {
        Command::Run(args) => run_plan(&qeval::plan::Plan::from_args(&args)?),
        Command::Bench(args) => run_plan(&qeval::plan::Plan::for_bench(&args)?),
        Command::Reference(args) => run_plan(&qeval::plan::Plan::for_reference(&args)?),
        Command::Sweep(args) => qeval::sweep::main(&args),
        Command::Models { models } => {
            let c = qeval::plan::catalog::Catalog::load(models.as_deref())?;
            print!("{}", qeval::plan::catalog::models_table(&c));
            Ok(0)
        }
        Command::Report {
            results,
            out,
            options,
        } => qeval::report::rerender(&results, out.as_deref(), &options),
        Command::Level { job } => {
            qeval::run::worker::run(&job)?;
            Ok(0)
        }
    }
}

/// The stages after planning: the thread pools, the output folder, the files, the levels.
fn run_plan(plan: &qeval::plan::Plan) -> anyhow::Result<i32> {
    qeval::threads::apply(plan.threads);
    qeval::plan::check_out_dir(&plan.out_dir)?;
    let located = qeval::fetch::locate::locate(plan)?;
    qeval::run::execute(plan, located)
}
