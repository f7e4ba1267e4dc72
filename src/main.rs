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
        Command::Quantize(args) => quantize(&args),
        Command::Models { models, local } => {
            if local {
                let hub = qeval::fetch::hub::HubConfig::from_env().cache_dir;
                print!(
                    "{}",
                    qeval::plan::local::table(&qeval::plan::local::scan(&hub))
                );
                return Ok(0);
            }
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
    let created = qeval::plan::check_out_dir(&plan.out_dir)?;
    let result =
        qeval::fetch::locate::locate(plan).and_then(|located| qeval::run::execute(plan, located));
    if result.is_err() && created {
        qeval::plan::remove_if_empty(&plan.out_dir);
    }
    result
}

/// `qeval quantize`: resolve the model, make the level, write the GGUF, say what it holds.
fn quantize(a: &qeval::cli::QuantizeArgs) -> anyhow::Result<i32> {
    use qeval::error::usage;
    let level = qeval::quant::Level::parse(&a.quant).map_err(|e| usage(format!("--quant: {e}")))?;
    if a.out.exists() && !a.force {
        return Err(usage(format!(
            "--out {} exists; give another path, or --force to overwrite it",
            a.out.display()
        )));
    }
    qeval::threads::apply(a.threads.unwrap_or_else(qeval::threads::default_threads));
    let catalog = qeval::plan::catalog::Catalog::load(a.models.as_deref())?;
    let model = qeval::plan::model_ref(&a.model, &catalog)?;
    let hub = qeval::fetch::hub::HubConfig::from_env();
    let (path, _, _) = qeval::fetch::locate::locate_model(&hub, &model)?;
    let src = qeval::model::source::ModelSource::open(&path)?;
    let t0 = std::time::Instant::now();
    let pb = qeval::run::console::bar(
        a.quiet,
        src.tensors.len() as u64,
        format!("{level}: quantize"),
    );
    let w = qeval::quant::gguf_out::quantize_to_gguf(&src, level, &a.out, &|| pb.inc(1))?;
    pb.finish_and_clear();
    let mix: Vec<String> = w
        .type_mix()
        .iter()
        .map(|(t, n)| format!("{t} {:.1}%", *n as f64 * 100.0 / w.n_params().max(1) as f64))
        .collect();
    println!(
        "wrote {} ({level} = llama-quantize {}): {:.1} MiB, {:.2} bits/weight, {} in {:.1} s",
        a.out.display(),
        level.llama_quantize(),
        w.weight_bytes() as f64 / (1 << 20) as f64,
        w.weight_bytes() as f64 * 8.0 / w.n_params().max(1) as f64,
        mix.join(", "),
        t0.elapsed().as_secs_f64()
    );
    // Fallbacks, counted by what was wanted and what was used (the first says why).
    let mut fell: std::collections::BTreeMap<(String, String), (usize, String)> =
        Default::default();
    for c in w.choices.iter().filter(|c| c.fallback_reason.is_some()) {
        let e = fell
            .entry((c.wanted.clone(), c.chosen.clone()))
            .or_insert((0, c.name.clone()));
        e.0 += 1;
    }
    for ((wanted, chosen), (n, first)) in &fell {
        println!(
            "  {n} tensor(s) {wanted} -> {chosen}: rows do not fit {wanted}'s blocks, as llama-quantize falls back (e.g. {first})"
        );
    }
    Ok(0)
}
