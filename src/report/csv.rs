//! `results.csv`: one row per level, raw numbers (no formatting), for spreadsheets.

use crate::results::Results;

fn f(v: Option<f64>) -> String {
    v.map(|x| format!("{x}")).unwrap_or_default()
}

fn esc(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn render(r: &Results) -> String {
    let mut s = String::from("model,device,threads,level,status,is_reference,source,weight_bytes,bits_per_weight,peak_rss_bytes,peak_rss_with_eval_bytes,kv_cache_bytes,prefill_tokens_per_sec,decode_tokens_per_sec,perplexity,perplexity_se,kld_mean,kld_mean_se,kld_median,kld_p99,top1_agreement,top1_agreement_se,rms_delta_p,rms_delta_p_se,scored_tokens\n");
    for l in &r.levels {
        let row = [
            esc(&r.model.name),
            esc(&r.device.name),
            r.device.threads.to_string(),
            l.level.clone(),
            l.status.clone(),
            l.is_reference.to_string(),
            esc(&l.source),
            l.weight_bytes.to_string(),
            format!("{:.4}", l.bits_per_weight),
            l.peak_rss_bytes.map(|b| b.to_string()).unwrap_or_default(),
            l.peak_rss_with_eval_bytes
                .map(|b| b.to_string())
                .unwrap_or_default(),
            l.kv_cache_bytes.to_string(),
            f(l.prefill_tokens_per_sec),
            f(l.decode_tokens_per_sec),
            f(l.perplexity),
            f(l.perplexity_se),
            f(l.kld_mean),
            f(l.kld_mean_se),
            f(l.kld_median),
            f(l.kld_p99),
            f(l.top1_agreement),
            f(l.top1_agreement_se),
            f(l.rms_delta_p),
            f(l.rms_delta_p_se),
            l.scored_tokens.to_string(),
        ];
        s.push_str(&row.join(","));
        s.push('\n');
    }
    s
}
