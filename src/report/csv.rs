//! `results.csv` (one row per level per device) and `tasks.csv` (one row per level, device,
//! task and metric): raw numbers, no formatting, for spreadsheets.

use super::merge::ReportSet;
use super::quality;
use super::recommend::fit;
use crate::report::options::ReportOptions;

fn f(v: Option<f64>) -> String {
    v.map(|x| format!("{x}")).unwrap_or_default()
}

fn u<T: ToString>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

fn esc(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn render(set: &ReportSet, opts: &ReportOptions) -> String {
    let mut s = String::from("model,device,device_kind,device_name,threads,results_file,level,status,is_reference,reference,source,weight_bytes,bits_per_weight,peak_rss_bytes,peak_rss_with_eval_bytes,kv_cache_bytes,kv_cache_ctx,fit_bytes,fit_ctx,prefill_tokens_per_sec,prefill_stddev,decode_tokens_per_sec,decode_stddev,perplexity,perplexity_se,dppl_pct,kld_mean,kld_mean_se,kld_median,kld_p99,kld_max,top1_agreement,top1_agreement_se,rms_delta_p,rms_delta_p_se,scored_tokens,acc_delta_pts,acc_delta_low_pts,acc_delta_high_pts,eval_tokens_per_sec,eval_stddev,kernels,scoring_mode\n");
    for e in set.entries() {
        let r = &set.runs[e.run].results;
        let l = e.level;
        let ft = fit(l, opts.budget_context);
        let acc = quality::acc_delta_pts(l);
        let row = [
            esc(&r.model.name),
            esc(e.device),
            esc(r.device.kind.name()),
            esc(&r.device.name),
            r.device.threads.to_string(),
            esc(&set.runs[e.run]
                .source
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()),
            esc(&l.level),
            esc(l.status.name()),
            l.is_reference.to_string(),
            esc(&r.reference),
            esc(&l.source),
            l.weight_bytes.to_string(),
            format!("{:.4}", l.bits_per_weight),
            u(l.peak_rss_bytes),
            u(l.peak_rss_with_eval_bytes),
            l.kv_cache_bytes.to_string(),
            l.kv_cache_ctx.to_string(),
            if l.is_ok() {
                ft.need_bytes.to_string()
            } else {
                String::new()
            },
            ft.ctx.to_string(),
            f(l.prefill_tokens_per_sec),
            f(l.prefill.as_ref().map(|s| s.stddev)),
            f(l.decode_tokens_per_sec),
            f(l.decode.as_ref().map(|s| s.stddev)),
            f(l.perplexity),
            f(l.perplexity_se),
            f(quality::dppl_pct(r, l)),
            f(l.kld_mean),
            f(l.kld_mean_se),
            f(l.kld_median),
            f(l.kld_p99),
            f(l.kld_max),
            f(l.top1_agreement),
            f(l.top1_agreement_se),
            f(l.rms_delta_p),
            f(l.rms_delta_p_se),
            l.scored_tokens.to_string(),
            f(acc.map(|a| a.0)),
            f(acc.map(|a| a.1)),
            f(acc.map(|a| a.2)),
            f(l.eval_tokens_per_sec),
            f(l.eval.as_ref().map(|s| s.stddev)),
            esc(&l.kernels),
            esc(l.scoring_mode.name()),
        ];
        s.push_str(&row.join(","));
        s.push('\n');
    }
    s
}

/// `tasks.csv`, or None when no level has task results.
pub fn render_tasks(set: &ReportSet) -> Option<String> {
    let entries = set.entries();
    if entries.iter().all(|e| e.level.tasks.is_empty()) {
        return None;
    }
    let mut s = String::from("model,device,level,is_reference,task,kind,metric,value,ci_low,ci_high,n,delta_vs_reference,delta_ci_low,delta_ci_high,mcnemar_p,flips_lost,flips_gained,min_detectable_delta,seconds,items_per_sec\n");
    for e in entries {
        let r = &set.runs[e.run].results;
        for t in &e.level.tasks {
            let row = [
                esc(&r.model.name),
                esc(e.device),
                esc(&e.level.level),
                e.level.is_reference.to_string(),
                esc(&t.task),
                esc(t.kind.name()),
                esc(&t.metric),
                t.value.to_string(),
                t.ci_low.to_string(),
                t.ci_high.to_string(),
                t.n.to_string(),
                f(t.delta_vs_reference),
                f(t.delta_ci_low),
                f(t.delta_ci_high),
                f(t.mcnemar_p),
                u(t.flips_lost),
                u(t.flips_gained),
                f(t.min_detectable_delta),
                t.seconds.to_string(),
                t.items_per_sec.to_string(),
            ];
            s.push_str(&row.join(","));
            s.push('\n');
        }
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Results;

    #[test]
    fn one_row_per_level_per_device_with_matching_columns() {
        let p =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/example/results.json");
        let a = Results::load(&p).unwrap();
        let mut b = a.clone();
        b.device.threads = 1;
        b.model.name = "a,\"b\"".into();
        let runs = [a, b]
            .into_iter()
            .map(|r| super::super::merge::Run {
                results: r,
                source: None,
                items: vec![],
                prompts: vec![],
                label: String::new(),
            })
            .collect();
        let set = ReportSet::from_runs(runs, true).unwrap();
        let out = render(&set, &ReportOptions::default());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1 + 8);
        let n = lines[0].split(',').count();
        assert!(
            lines[1].starts_with("smollm2-135m-q4_1,smollm2-135m-q4_1 cpu 2t,cpu,"),
            "{}",
            lines[1]
        );
        assert_eq!(lines[1].split(',').count(), n);
        assert!(lines[5].starts_with("\"a,\"\"b\"\"\","), "{}", lines[5]);
        assert!(render_tasks(&set).is_none());
    }
}
