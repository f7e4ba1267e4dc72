//! qeval's own CPU matrix multiplication for quantized weights, as a candle custom op: the
//! weight types candle leaves without x86 SIMD (Q4_1, Q5_0, Q5_1) and the common 32-block
//! types (Q4_0, Q8_0) and k-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K), with the instruction set chosen at
//! run time.
//!
//! Why: candle's quantized kernels pick their SIMD at compile time (`target_feature`), so a
//! portable build (no `-C target-cpu=native`) runs scalar loops, and Q4_1/Q5_0/Q5_1 have no x86
//! SIMD at all. Here the CPU is asked once (`is_x86_feature_detected!`) and the AVX2 or the
//! AVX-512 VNNI version runs. The arithmetic is llama.cpp's: activations are quantized per
//! row to 8 bits (Q8_0/Q8_1 blocks of 32, or Q8_K blocks of 256 for k-quants, scales rounded to
//! f16 as ggml does), integer dot products per block, f32 accumulation. Prefill tiles four
//! activation rows (eight for the k-quants) per unpacked weight block; the 32-value block
//! types take four weight rows at a time (one activation load and one f32 FMA for the four),
//! and decode prefetches the weights ahead of the arithmetic. On AVX2 weights stay in their
//! GGUF layout; on AVX-512 VNNI the 32-value types, Q2_K, Q4_K and Q6_K are reordered into
//! tiles of 16 rows (`tiles`) and the GGUF copy is freed, so measured memory stays the file's
//! (Q4_K: 2.8% more, its scales unpacked).
//!
//! `QEVAL_KERNELS=candle` turns these kernels off (candle's own `QMatMul` runs), to compare.

pub mod attention;
pub mod exp;
pub mod f16;
pub mod iq;
pub mod swiglu;
mod team;
mod tiles;
mod x86;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Arc;
use std::sync::OnceLock;

/// The instruction set the kernels use on this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// AVX2 + FMA + F16C.
    Avx2,
    /// The same plus AVX-512 F/BW/VL and VNNI (`vpdpbusd`; 32-value block types repacked into
    /// tiles of 16 rows).
    Avx512Vnni,
}

impl Isa {
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx2 => "avx2",
            Isa::Avx512Vnni => "avx512-vnni",
        }
    }
}

/// What this CPU supports, asked once. `None`: no kernel here (not x86-64, no AVX2, or
/// `QEVAL_KERNELS=candle`).
pub fn isa() -> Option<Isa> {
    static ISA: OnceLock<Option<Isa>> = OnceLock::new();
    *ISA.get_or_init(|| {
        if std::env::var("QEVAL_KERNELS").is_ok_and(|v| v.eq_ignore_ascii_case("candle")) {
            return None;
        }
        detect()
    })
}

/// `QEVAL_KQUANT_KERNELS=candle`: Q4_K and Q6_K weights go to candle's repacking kernels.
pub fn kquants_to_candle() -> bool {
    static C: OnceLock<bool> = OnceLock::new();
    *C.get_or_init(|| {
        std::env::var("QEVAL_KQUANT_KERNELS").is_ok_and(|v| v.eq_ignore_ascii_case("candle"))
    })
}

/// The best instruction set this CPU runs, ignoring `QEVAL_KERNELS`.
pub fn detect() -> Option<Isa> {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c");
        if !avx2 {
            return None;
        }
        if is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512vnni")
        {
            return Some(Isa::Avx512Vnni);
        }
        Some(Isa::Avx2)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// Which matmul implementation quantized weights use in this process, in words for results.json.
pub fn describe() -> String {
    match isa() {
        Some(i) => format!(
            "qeval {} for q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k q5_k {}f16, the i-quants, tq1_0, tq2_0 \
             and mxfp4, candle for the rest",
            i.name(),
            if kquants_to_candle() {
                ""
            } else {
                "q4_k q6_k "
            }
        ),
        None => "candle (the i-quants, tq1_0, tq2_0 and mxfp4: qeval's f32 path)".to_string(),
    }
}

/// The weight types with a kernel here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    /// In tiles on AVX-512 VNNI, in rows elsewhere.
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
}

impl Kind {
    pub fn of(d: GgmlDType) -> Option<Kind> {
        Some(match d {
            GgmlDType::Q4_0 => Kind::Q4_0,
            GgmlDType::Q4_1 => Kind::Q4_1,
            GgmlDType::Q5_0 => Kind::Q5_0,
            GgmlDType::Q5_1 => Kind::Q5_1,
            GgmlDType::Q8_0 => Kind::Q8_0,
            GgmlDType::Q2K => Kind::Q2K,
            GgmlDType::Q3K => Kind::Q3K,
            GgmlDType::Q4K => Kind::Q4K,
            GgmlDType::Q5K => Kind::Q5K,
            GgmlDType::Q6K => Kind::Q6K,
            _ => return None,
        })
    }

    /// Weights per block.
    pub fn block(self) -> usize {
        match self {
            Kind::Q2K | Kind::Q3K | Kind::Q4K | Kind::Q5K | Kind::Q6K => 256,
            _ => 32,
        }
    }

    /// Bytes per block in the GGUF layout.
    pub fn block_bytes(self) -> usize {
        match self {
            Kind::Q4_0 => 18,
            Kind::Q4_1 => 20,
            Kind::Q5_0 => 22,
            Kind::Q5_1 => 24,
            Kind::Q8_0 => 34,
            Kind::Q2K => 84,
            Kind::Q3K => 110,
            Kind::Q4K => 144,
            Kind::Q5K => 176,
            Kind::Q6K => 210,
        }
    }
}

/// Activations quantized to 8 bits, row-major: `qs` m×k, per block a scale `d`, `Σqs` in
/// `sum`, `d × Σqs` in `s` (for the types with a minimum), and the sums of each 16 values in
/// `bsums` (k-quants).
pub struct QActs {
    pub m: usize,
    pub k: usize,
    pub block: usize,
    pub qs: Vec<i8>,
    pub d: Vec<f32>,
    pub s: Vec<f32>,
    pub sum: Vec<i32>,
    pub bsums: Vec<i16>,
}

/// Q3_K's 12 bytes of 6-bit scales → the 16 scales as the bytes of four little-endian words
/// (still +32, so 0..63), as llama.cpp's `aux` shuffle in `dequantize_row_q3_K` unpacks them.
/// Shared by the AVX2 row kernel and the tile repack.
fn q3k_scale_words(q: &[u8; 12]) -> [u32; 4] {
    const KMASK1: u32 = 0x0303_0303;
    const KMASK2: u32 = 0x0f0f_0f0f;
    let a0 = u32::from_le_bytes([q[0], q[1], q[2], q[3]]);
    let a1 = u32::from_le_bytes([q[4], q[5], q[6], q[7]]);
    let a2 = u32::from_le_bytes([q[8], q[9], q[10], q[11]]);
    [
        (a0 & KMASK2) | ((a2 & KMASK1) << 4),
        (a1 & KMASK2) | (((a2 >> 2) & KMASK1) << 4),
        ((a0 >> 4) & KMASK2) | (((a2 >> 4) & KMASK1) << 4),
        ((a1 >> 4) & KMASK2) | (((a2 >> 6) & KMASK1) << 4),
    ]
}

/// Round to nearest, ties to even, as llama.cpp's SIMD quantizers (`_mm256_round_ps`) do;
/// the 1.5·2²³ trick is exact for |x| < 2²², and these values are at most 127: x + 1.5·2²³
/// holds the rounded x in its low mantissa bits, read as an integer (`nearest_int` in
/// llama.cpp), which compiles to vector adds where a float-to-int `as` does not.
#[inline(always)]
fn round_even(x: f32) -> i32 {
    const MAGIC: f32 = 12_582_912.0;
    (x + MAGIC).to_bits() as i32 - 0x4B40_0000
}

fn f16_round(x: f32) -> f32 {
    half::f16::from_f32(x).to_f32()
}

/// One row's slices of a `QActs`.
struct RowOut<'a> {
    qs: &'a mut [i8],
    d: &'a mut [f32],
    s: &'a mut [f32],
    sum: &'a mut [i32],
    bs: &'a mut [i16],
}

/// Quantize one row as llama.cpp's `quantize_row_q8_0/q8_1` (block 32: scale rounded to f16)
/// or `quantize_row_q8_K` (block 256: f32 scale -max/127, sums of 16), in the widest vectors
/// this CPU has: the same code compiled for AVX-512 or AVX2 (`quantize_row_body`). Written
/// for the portable baseline only, its sequential search for the largest magnitude took 8% of
/// a Qwen2.5-1.5B Q6_K `qeval bench` (perf, Sapphire Rapids, 2 threads).
fn quantize_row(x: &[f32], block: usize, o: RowOut<'_>) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
        unsafe fn avx512(x: &[f32], block: usize, o: RowOut<'_>) {
            quantize_row_body(x, block, o)
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2(x: &[f32], block: usize, o: RowOut<'_>) {
            quantize_row_body(x, block, o)
        }
        match isa() {
            // Safety: `isa` found the features each version is compiled for.
            Some(Isa::Avx512Vnni) => return unsafe { avx512(x, block, o) },
            Some(Isa::Avx2) => return unsafe { avx2(x, block, o) },
            None => {}
        }
    }
    quantize_row_body(x, block, o)
}

/// The largest |v| of `x` (0 for none), lane by lane so that it compiles to vector max
/// instructions; the same value as a sequential fold, max being exact.
#[inline(always)]
fn abs_max(x: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (l, v) in lanes.iter_mut().zip(c) {
            *l = l.max(v.abs());
        }
    }
    let tail = chunks.remainder().iter().fold(0f32, |a, v| a.max(v.abs()));
    lanes.iter().fold(tail, |a, &v| a.max(v))
}

#[inline(always)]
fn quantize_row_body(x: &[f32], block: usize, o: RowOut<'_>) {
    for (b, xb) in x.chunks_exact(block).enumerate() {
        let q = &mut o.qs[b * block..(b + 1) * block];
        let per = block / 16;
        if block == 32 {
            let amax = abs_max(xb);
            let db = amax / 127.0;
            let id = if db != 0.0 { 1.0 / db } else { 0.0 };
            let mut sum = 0i32;
            for (qi, &v) in q.iter_mut().zip(xb) {
                let r = round_even(v * id);
                *qi = r as i8;
                sum += r;
            }
            o.d[b] = f16_round(db);
            o.s[b] = f16_round(db * sum as f32);
            o.sum[b] = sum;
        } else {
            // quantize_row_q8_K: the value of largest magnitude (the first, where several
            // have it) maps to -127.
            let amax = abs_max(xb);
            let max = xb.iter().copied().find(|v| v.abs() == amax).unwrap_or(0.0);
            if amax == 0.0 {
                o.d[b] = 0.0;
                q.fill(0);
            } else {
                let iscale = -127.0 / max;
                for (qi, &v) in q.iter_mut().zip(xb) {
                    // `nearest_int`: ties to even, as llama.cpp's quantize_row_q8_K_ref.
                    *qi = round_even(iscale * v).min(127) as i8;
                }
                o.d[b] = 1.0 / iscale;
            }
            o.sum[b] = q.iter().map(|&v| v as i32).sum();
        }
        for j in 0..per {
            o.bs[b * per + j] = q[j * 16..(j + 1) * 16].iter().map(|&v| v as i16).sum();
        }
    }
}

impl QActs {
    pub fn quantize(x: &[f32], m: usize, k: usize, block: usize) -> QActs {
        let nb = k / block;
        let bs_len = k / 16;
        let mut a = QActs {
            m,
            k,
            block,
            qs: vec![0; m * k],
            d: vec![0.0; m * nb],
            s: vec![0.0; m * nb],
            sum: vec![0; m * nb],
            bsums: vec![0; m * bs_len],
        };
        let rows =
            a.qs.chunks_mut(k)
                .zip(a.d.chunks_mut(nb))
                .zip(a.s.chunks_mut(nb))
                .zip(a.sum.chunks_mut(nb))
                .zip(a.bsums.chunks_mut(bs_len))
                .map(|((((qs, d), s), sum), bs)| RowOut { qs, d, s, sum, bs });
        let work: Vec<(&[f32], RowOut<'_>)> = x.chunks(k).zip(rows).collect();
        if m > 8 {
            work.into_par_iter()
                .for_each(|(x, o)| quantize_row(x, block, o));
        } else {
            // Decode: a row or a few, not worth a trip through the thread pool.
            for (x, o) in work {
                quantize_row(x, block, o);
            }
        }
        a
    }
}

/// Below this many multiply-adds a product runs on the calling thread: waking the pool
/// costs more than it saves. Decode is bandwidth-bound, so even its small matrices (576×576)
/// go to both cores: at 2¹⁹ q8_0 decode ran at 113 t/s, at 2¹⁶ 132 (`qeval bench`, 2 threads).
const PARALLEL_MIN_MACS: usize = 1 << 16;

/// The weight bytes as the kernel reads them.
#[derive(Debug, Clone)]
enum Weights {
    /// candle's storage, GGUF block layout.
    Gguf(Arc<QTensor>),
    /// Reordered into tiles of 16 rows (`tiles`), the original freed.
    Tiles(Arc<Vec<u8>>),
}

/// A quantized weight matrix (n outputs × k inputs) multiplied by our kernels.
#[derive(Debug, Clone)]
pub struct QMatMulOp {
    w: Weights,
    kind: Kind,
    isa: Isa,
    n: usize,
    k: usize,
}

impl QMatMulOp {
    /// The kernel for this weight, or `None` where there is none (type, device, CPU, or
    /// `QEVAL_KERNELS=candle`): the caller then uses candle's `QMatMul`. On AVX-512 VNNI the
    /// 32-value block types are repacked into tiles when nothing else holds the tensor (a
    /// tied embedding keeps its layout, so no second copy exists).
    /// The tensor comes back in `Err` where there is no kernel for it.
    pub fn new(w: Arc<QTensor>) -> std::result::Result<QMatMulOp, Arc<QTensor>> {
        let Some(isa) = isa() else {
            return Err(w);
        };
        // candle 0.11 repacks Q4_K (and Q6_K once a prefill has run) into tiles of 16 rows
        // itself, and keeps the repacked copy beside the original: the weights' memory twice.
        // `QEVAL_KQUANT_KERNELS=candle` leaves those types to it; by default qeval's kernels
        // run them (its own tiles on AVX-512 VNNI, with the GGUF copy freed; rows on AVX2).
        let n = w.shape().dims().first().copied().unwrap_or(0);
        match Kind::of(w.dtype()) {
            None => return Err(w),
            Some(Kind::Q4K | Kind::Q6K) if n % 16 == 0 && kquants_to_candle() => return Err(w),
            Some(_) => {}
        }
        let sole = Arc::strong_count(&w) == 1;
        match Self::with_isa(w.clone(), isa, sole) {
            Some(op) => Ok(op),
            None => Err(w),
        }
    }

    /// As `new`, with the instruction set named and whether tiles may be made (tests run
    /// every variant this CPU has).
    pub fn with_isa(w: Arc<QTensor>, isa: Isa, allow_tiles: bool) -> Option<QMatMulOp> {
        if !w.device().is_cpu() {
            return None;
        }
        let kind = Kind::of(w.dtype())?;
        let (n, k) = w.shape().dims2().ok()?;
        if k % kind.block() != 0 {
            return None;
        }
        let tiles = allow_tiles && isa == Isa::Avx512Vnni && tiles::has_tiles(kind) && n % 16 == 0;
        let w = if tiles {
            let data = w.data().ok()?;
            Weights::Tiles(Arc::new(tiles::repack(kind, &data, n, k / kind.block())))
        } else {
            Weights::Gguf(w)
        };
        Some(QMatMulOp { w, kind, isa, n, k })
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Whether the weights were repacked into tiles of 16 rows.
    pub fn is_tiled(&self) -> bool {
        matches!(self.w, Weights::Tiles(_))
    }

    /// A tiled op for a tensor that is also looked up as a token embedding (see
    /// `embedding`), so that the output layer and the embedding share one copy; `Err` gives
    /// the tensor back where there are no tiles for it.
    pub fn tied(w: Arc<QTensor>) -> std::result::Result<QMatMulOp, Arc<QTensor>> {
        let Some(isa) = isa() else {
            return Err(w);
        };
        match Self::with_isa(w.clone(), isa, true) {
            Some(op) if op.is_tiled() && op.kind.block() == 32 => Ok(op),
            _ => Err(w),
        }
    }

    /// Rows `ids` of the weight, dequantized: (len, k). Only for tiled weights.
    pub fn embedding(&self, ids: &[u32]) -> candle_core::Result<Tensor> {
        let Weights::Tiles(t) = &self.w else {
            candle_core::bail!("qeval-qmatmul: embedding lookup needs tiled weights");
        };
        let mut out = vec![0f32; ids.len() * self.k];
        for (row, &id) in out.chunks_mut(self.k).zip(ids) {
            let id = id as usize;
            if id >= self.n {
                candle_core::bail!("token id {id} outside the vocabulary of {}", self.n);
            }
            tiles::dequantize_row(self.kind, t, self.k / 32, id, row);
        }
        Tensor::from_vec(out, (ids.len(), self.k), &candle_core::Device::Cpu)
    }

    /// x (..., k) → (..., n).
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims().to_vec();
        let rows: usize = dims[..dims.len() - 1].iter().product();
        let x2 = x.reshape((rows, self.k))?.contiguous()?;
        let y = x2.apply_op1_no_bwd(self)?;
        let mut out = dims;
        let last = out.len() - 1;
        out[last] = self.n;
        y.reshape(out)
    }

    /// The product of `x` (m×k, row-major) with the weight's transpose into `dst` (m×n).
    pub fn matmul(&self, x: &[f32], m: usize, dst: &mut [f32]) -> candle_core::Result<()> {
        let acts = QActs::quantize(x, m, self.k, self.kind.block());
        match &self.w {
            Weights::Gguf(q) => {
                let data = q.data()?;
                matmul_rows(self.kind, self.isa, &data, self.n, self.k, &acts, dst);
            }
            Weights::Tiles(t) => matmul_tiles(self.kind, t, self.n, self.k, &acts, dst),
        }
        Ok(())
    }
}

/// A pointer to the output shared by the workers; each writes its own columns.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// How far ahead of the block being multiplied decode asks for weights into L2
/// (`prefetch_stream`). 16 KiB: at 8, 16, 32 and 64 KiB (T2, next block T0 as well) Qwen2.5-Coder-1.5B
/// Q4_K_M decoded at 19.5, 20.0-20.2, 19.4-20.0 and 20.5 t/s and Q2_K at 25.9-26.4, 26.2-26.7,
/// 25.8-26.7 and 25.5, against 18.2-18.3 and 24.3-24.7 with the next two blocks into L1 only
/// (2 threads, Sapphire Rapids VM, `qeval bench`).
#[cfg(target_arch = "x86_64")]
const PREFETCH_FAR: usize = 16 << 10;

/// Prefetch for the tiles' loop over one activation row (decode), which streams every weight
/// from memory once, `bytes` a block: the next block into L1 (T0), and the block
/// `PREFETCH_FAR` ahead into L2 (T2). The hardware prefetchers stop at each 4 KiB page, and
/// L1's fill buffers alone (about 16 lines in flight) cannot cover memory's latency at this
/// bandwidth; the far requests, served into L2, can, and the near ones then hit L2. Measured on
/// 151936×1536, one row, 2 threads (Sapphire Rapids): T0 prefetch took the Q4_K and Q6_K tiles from
/// 45.6 and 25.7 GOP/s to 62-71 and 43-45, Q4_0 from 57.9 to 66; the far T2 requests then added
/// 9-10% to whole-model decode (see `PREFETCH_FAR`). Addresses past the data are harmless: a
/// prefetch never faults.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch_stream(p: *const u8, bytes: usize) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0, _MM_HINT_T2};
    let (near, far) = (p.wrapping_add(bytes), p.wrapping_add(PREFETCH_FAR));
    let mut off = 0;
    while off < bytes {
        // Safety: a prefetch is a hint; it reads nothing the program sees and never faults.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(near.wrapping_add(off) as *const i8);
            _mm_prefetch::<_MM_HINT_T2>(far.wrapping_add(off) as *const i8);
        }
        off += 64;
    }
}

/// Run `f(chunk)` for `chunks` chunks: on the spinning team (`team`) when the product is large
/// enough, in rayon's pool when the team is busy, on this thread when small.
fn for_chunks(chunks: usize, macs: usize, f: impl Fn(usize) + Sync + Send) {
    if macs < PARALLEL_MIN_MACS || rayon::current_num_threads() <= 1 {
        (0..chunks).for_each(f);
    } else if !team::team().run(chunks, &f) {
        // the team is busy (an op inside an op, or another thread's): rayon's pool
        (0..chunks).into_par_iter().for_each(f);
    }
}

/// GGUF layout: weight rows in chunks, eight or four activation rows per unpacked weight block
/// where there are that many.
fn matmul_rows(kind: Kind, isa: Isa, w: &[u8], n: usize, k: usize, a: &QActs, dst: &mut [f32]) {
    let m = a.m;
    let row_bytes = k / kind.block() * kind.block_bytes();
    assert!(
        w.len() >= n * row_bytes,
        "weight data shorter than its shape"
    );
    assert!(dst.len() >= m * n, "output buffer too small");
    let threads = rayon::current_num_threads().max(1);
    // Enough chunks to balance, few enough that each streams a good run of weight rows.
    let chunk = n.div_ceil(threads * 4).max(1);
    let out = OutPtr(dst.as_mut_ptr());
    for_chunks(n.div_ceil(chunk), m * n * k, |c| {
        let w0 = c * chunk;
        let w1 = (w0 + chunk).min(n);
        let mut a0 = 0;
        while a0 < m {
            // Eight rows for the k-quants (measured: q4_k 1.5x, q6_k 1.2x over four on
            // 8960x1536, m=512); four for the 32-blocks, where eight gained nothing.
            let r = if m - a0 >= 8 && kind.block() == 256 {
                8
            } else if m - a0 >= 4 {
                4
            } else {
                1
            };
            let mut wi = w0;
            // The 32-value blocks: four weight rows at a time, one activation load for four.
            if kind.block() == 32 {
                while wi + 4 <= w1 {
                    let mut res = [[0f32; 4]; 4];
                    x86::dot_rows4(
                        kind,
                        isa,
                        &w[wi * row_bytes..],
                        row_bytes,
                        a,
                        a0,
                        r,
                        &mut res,
                    );
                    for (j, v) in res.iter().take(r).enumerate() {
                        // Safety: rows a0+j < m, columns wi..wi+4 <= w1 <= n, of this chunk.
                        unsafe {
                            std::ptr::copy_nonoverlapping(
                                v.as_ptr(),
                                out.get().add((a0 + j) * n + wi),
                                4,
                            )
                        };
                    }
                    wi += 4;
                }
            }
            for wi in wi..w1 {
                let wrow = &w[wi * row_bytes..(wi + 1) * row_bytes];
                let mut res = [0f32; 8];
                x86::dot_rows(kind, isa, wrow, a, a0, r, &mut res);
                for (j, v) in res.iter().take(r).enumerate() {
                    // Safety: row a0+j < m and column wi < n; each column belongs to one chunk.
                    unsafe { *out.get().add((a0 + j) * n + wi) = *v };
                }
            }
            a0 += r;
        }
    });
}

/// Tiles of 16 weight rows: each tile against every activation row, four at a time.
fn matmul_tiles(kind: Kind, w: &[u8], n: usize, k: usize, a: &QActs, dst: &mut [f32]) {
    let m = a.m;
    let nb = k / kind.block();
    let tile = nb * tiles::tile_bytes(kind);
    let n_tiles = n / 16;
    assert!(
        w.len() >= n_tiles * tile,
        "tiled weight data shorter than its shape"
    );
    assert!(dst.len() >= m * n, "output buffer too small");
    let threads = rayon::current_num_threads().max(1);
    let chunk = n_tiles.div_ceil(threads * 4).max(1);
    let out = OutPtr(dst.as_mut_ptr());
    // Prefill: unpack each tile's values once for all activation rows (the unpacked bytes then
    // stay in cache while the rows stream past them), not once per four rows.
    let unpacked = m >= UNPACK_MIN_ROWS && tiles::has_unpack(kind);
    for_chunks(n_tiles.div_ceil(chunk), m * n * k, |c| {
        let t0 = c * chunk;
        let t1 = (t0 + chunk).min(n_tiles);
        // Prefill of the unpacked kinds: a few tiles at a time, so that each activation row
        // is read once per group; otherwise the whole chunk is the group.
        let ub = nb * tiles::UNPACKED_BLOCK;
        let g = if unpacked {
            (UNPACK_BYTES / ub).clamp(1, 4)
        } else {
            chunk
        };
        let mut pre = vec![0u8; if unpacked { g * ub } else { 0 }];
        for tg in (t0..t1).step_by(g) {
            let te = (tg + g).min(t1);
            if unpacked {
                for (t, dst) in (tg..te).zip(pre.chunks_mut(ub)) {
                    #[cfg(not(target_arch = "x86_64"))]
                    let _ = (t, dst);
                    #[cfg(target_arch = "x86_64")]
                    // Safety: tiles exist only when `detect` found AVX-512 F/BW/VNNI; the
                    // asserts above bound the tile; `dst` holds nb unpacked blocks.
                    unsafe {
                        tiles::unpack(kind, w.as_ptr().add(t * tile), nb, dst)
                    };
                }
            }
            let mut a0 = 0;
            while a0 < m {
                let r = if m - a0 >= 4 { 4 } else { 1 };
                for t in tg..te {
                    let src = if unpacked {
                        pre[(t - tg) * ub..].as_ptr()
                    } else {
                        std::ptr::null()
                    };
                    let mut res = [[0f32; 16]; 4];
                    #[cfg(not(target_arch = "x86_64"))]
                    let _ = src;
                    #[cfg(target_arch = "x86_64")]
                    // Safety: as above; `src` is null or this tile's unpacked values, and
                    // `a0 + r <= m`.
                    unsafe {
                        let p = w.as_ptr().add(t * tile);
                        if r == 4 {
                            tiles::tile::<4>(kind, p, src, nb, a, a0, &mut res);
                        } else {
                            tiles::tile::<1>(kind, p, src, nb, a, a0, &mut res);
                        }
                    }
                    for (j, row) in res.iter().take(r).enumerate() {
                        // Safety: row a0+j < m, columns 16t..16t+16 <= n; each tile belongs
                        // to one chunk.
                        unsafe {
                            let o = out.get().add((a0 + j) * n + 16 * t);
                            std::ptr::copy_nonoverlapping(row.as_ptr(), o, 16);
                        }
                    }
                }
                a0 += r;
            }
        }
    });
}

/// Activation rows from which Q2_K, Q3_K and Q6_K tiles are unpacked once per matmul
/// (`tiles::unpack`): below it the unpack would not pay for its stores.
const UNPACK_MIN_ROWS: usize = 16;

/// Scratch for the unpacked values of one group of tiles (one to four tiles; at most 4 × 24 KB
/// at k = 1536, one 143 KB tile at k = 8960), sized for the L2 cache. Measured with
/// `kernel_speed q6k 8960 1536 512` against one tile per group: 1.20× → 1.24–1.39× candle.
const UNPACK_BYTES: usize = 512 * 1024;

/// A custom op's input as contiguous f32 rows of `k` columns, and their count; errors name
/// the op.
fn f32_rows<'a>(
    op: &str,
    storage: &'a CpuStorage,
    layout: &Layout,
    k: usize,
) -> candle_core::Result<(&'a [f32], usize)> {
    let (m, cols) = layout.shape().dims2()?;
    if cols != k {
        candle_core::bail!("{op}: input has {cols} columns, the weight {k}");
    }
    let x = match storage {
        CpuStorage::F32(v) => v,
        _ => candle_core::bail!("{op}: input must be f32"),
    };
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{op}: input not contiguous")))?;
    Ok((&x[start..end], m))
}

impl CustomOp1 for QMatMulOp {
    fn name(&self) -> &'static str {
        "qeval-qmatmul"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, m) = f32_rows("qeval-qmatmul", storage, layout, self.k)?;
        let mut dst = vec![0f32; m * self.n];
        self.matmul(x, m, &mut dst)?;
        Ok((CpuStorage::F32(dst), Shape::from((m, self.n))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::QMatMul;
    use candle_core::{Device, Module};

    /// Σ over the activations of `x` that sit exactly on a rounding tie, of their block's
    /// step. qeval rounds ties to even as llama.cpp does, candle away from zero. The scale
    /// arithmetic is `quantize_row`'s and candle's, so a tie here is a tie there.
    fn tie_steps(x: &[f32], block: usize) -> f32 {
        if block == 256 {
            return x
                .chunks_exact(256)
                .map(|xb| {
                    let max = xb
                        .iter()
                        .fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
                    if max == 0.0 {
                        return 0.0;
                    }
                    let iscale = -127.0 / max;
                    let ties = xb
                        .iter()
                        .filter(|&&v| (v * iscale).fract().abs() == 0.5)
                        .count();
                    ties as f32 / iscale.abs()
                })
                .sum();
        }
        x.chunks_exact(32)
            .map(|xb| {
                let amax = xb.iter().fold(0f32, |a, v| a.max(v.abs()));
                let db = amax / 127.0;
                let id = if db != 0.0 { 1.0 / db } else { 0.0 };
                let ties = xb
                    .iter()
                    .filter(|&&v| (v * id).fract().abs() == 0.5)
                    .count();
                ties as f32 * f16_round(db)
            })
            .sum()
    }

    /// Prefill of Q2_K, Q3_K and Q6_K through the unpacked tiles (`UNPACK_MIN_ROWS` rows or
    /// more, groups of several tiles: enough tiles that every chunk holds more than one) gives
    /// each row what that row alone gives through the decode path, which unpacks in registers.
    #[test]
    fn unpacked_prefill_matches_decode() {
        if detect() != Some(Isa::Avx512Vnni) {
            eprintln!("no AVX-512 VNNI on this CPU: no tiles, nothing to compare");
            return;
        }
        let dev = Device::Cpu;
        let k = 512;
        // chunks of 4 tiles, so groups of up to 4 tiles (UNPACK_BYTES holds 4 at this k)
        let n = 16 * 4 * 4 * rayon::current_num_threads().max(1);
        let m = UNPACK_MIN_ROWS + 1;
        for dt in [GgmlDType::Q2K, GgmlDType::Q3K, GgmlDType::Q6K] {
            let w = Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap();
            let q = Arc::new(QTensor::quantize(&w, dt).unwrap());
            let op = QMatMulOp::with_isa(q, Isa::Avx512Vnni, true).unwrap();
            assert!(op.is_tiled(), "{dt:?}");
            let x = Tensor::randn(0f32, 1.0, (m, k), &dev).unwrap();
            let all = op.forward(&x).unwrap().to_vec2::<f32>().unwrap();
            let scale = all.iter().flatten().fold(0f32, |a, v| a.max(v.abs()));
            assert!(scale > 0.0, "{dt:?}: all outputs zero");
            for (i, got) in all.iter().enumerate() {
                let row = x.narrow(0, i, 1).unwrap();
                let want = op.forward(&row).unwrap().to_vec2::<f32>().unwrap();
                for (c, (g, w)) in got.iter().zip(&want[0]).enumerate() {
                    assert!(
                        (g - w).abs() <= 1e-5 * scale,
                        "{dt:?} row {i} column {c}: prefill {g}, decode {w}"
                    );
                }
            }
        }
    }

    /// The vector builds of the activation quantizer give what the portable one gives, bit for
    /// bit, on rows with exact ties, repeated largest magnitudes of both signs, zero blocks and
    /// a remainder shorter than a vector.
    #[test]
    fn vector_quantizer_matches_portable() {
        for block in [32usize, 256] {
            let (m, k) = (3, 4 * block);
            let mut x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7919 % 1013) as f32 - 506.0) / 37.0)
                .collect();
            x[5] = 13.0; // a largest magnitude, then the same negated later in the block
            x[9] = -13.0;
            x[block..2 * block].fill(0.0);
            x[2 * block + 1] = -12.5;
            x[2 * block + 2] = 12.5;
            let fast = QActs::quantize(&x, m, k, block);
            let nb = k / block;
            let mut slow = QActs::quantize(&vec![0.0; m * k], m, k, block);
            for (r, xr) in x.chunks(k).enumerate() {
                quantize_row_body(
                    xr,
                    block,
                    RowOut {
                        qs: &mut slow.qs[r * k..(r + 1) * k],
                        d: &mut slow.d[r * nb..(r + 1) * nb],
                        s: &mut slow.s[r * nb..(r + 1) * nb],
                        sum: &mut slow.sum[r * nb..(r + 1) * nb],
                        bs: &mut slow.bsums[r * k / 16..(r + 1) * k / 16],
                    },
                );
            }
            assert_eq!(fast.qs, slow.qs, "block {block}");
            assert_eq!(fast.d, slow.d, "block {block}");
            assert_eq!(fast.s, slow.s, "block {block}");
            assert_eq!(fast.sum, slow.sum, "block {block}");
            assert_eq!(fast.bsums, slow.bsums, "block {block}");
            assert!(fast.qs.contains(&-127), "block {block}: no -127");
        }
    }

    /// Compare every kernel type on every instruction set this CPU has with candle's own
    /// quantized matmul on the same quantized weights: one row (decode), rows in tiles of four
    /// plus a remainder (prefill), k of several blocks.
    #[test]
    fn kernels_match_candle() {
        let Some(best) = detect() else {
            eprintln!("no AVX2 on this CPU: kernels not used, nothing to compare");
            return;
        };
        // (instruction set, tiles allowed)
        let mut isas = vec![(Isa::Avx2, false)];
        if best == Isa::Avx512Vnni {
            isas.push((Isa::Avx512Vnni, false));
            isas.push((Isa::Avx512Vnni, true));
        }
        let dev = Device::Cpu;
        let types = [
            GgmlDType::Q4_0,
            GgmlDType::Q4_1,
            GgmlDType::Q5_0,
            GgmlDType::Q5_1,
            GgmlDType::Q8_0,
            GgmlDType::Q2K,
            GgmlDType::Q3K,
            GgmlDType::Q4K,
            GgmlDType::Q5K,
            GgmlDType::Q6K,
        ];
        for dt in types {
            let k = if Kind::of(dt).map(|k| k.block()) == Some(256) {
                512
            } else {
                576
            };
            // 48 rows: three tiles of 16; 37: no tiles (the row layout runs).
            for n in [48usize, 37] {
                let w = Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap();
                let q = Arc::new(QTensor::quantize(&w, dt).unwrap());
                let reference = QMatMul::QTensor(q.clone());
                let wq: Vec<f32> = q
                    .dequantize(&dev)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                let max_w = wq.iter().fold(0f32, |a, v| a.max(v.abs()));
                let kind = Kind::of(dt).unwrap();
                let block = kind.block();
                // UNPACK_MIN_ROWS + 1: Q2_K/Q3_K/Q6_K tiles unpacked once per matmul, with
                // groups of four rows and one single row against the unpacked values
                for m in [1usize, 3, 4, 9, UNPACK_MIN_ROWS + 1] {
                    let x = Tensor::randn(0f32, 1.0, (m, k), &dev).unwrap();
                    let want = reference.forward(&x).unwrap().to_vec2::<f32>().unwrap();
                    // Ties (x.5) in the activations round to even here, as llama.cpp's
                    // SIMD quantizer does, and away from zero in candle: one step of that
                    // activation, times the largest weight, for each tie in the row.
                    let xs = x.to_vec2::<f32>().unwrap();
                    let ties: Vec<f32> = xs.iter().map(|r| tie_steps(r, block) * max_w).collect();
                    for &(isa, tiles) in &isas {
                        let expect_tiles = tiles && n % 16 == 0 && tiles::has_tiles(kind);
                        let op = QMatMulOp::with_isa(q.clone(), isa, tiles).unwrap();
                        assert_eq!(op.is_tiled(), expect_tiles, "{dt:?} n={n}");
                        let got = op.forward(&x).unwrap().to_vec2::<f32>().unwrap();
                        #[cfg(target_arch = "x86_64")]
                        if expect_tiles && matches!(kind, Kind::Q2K | Kind::Q3K) {
                            // the path without GFNI gives the same bits (both exact integers)
                            use std::sync::atomic::Ordering::Relaxed;
                            tiles::NO_GFNI.store(true, Relaxed);
                            let plain = op.forward(&x).unwrap().to_vec2::<f32>().unwrap();
                            tiles::NO_GFNI.store(false, Relaxed);
                            assert_eq!(plain, got, "{dt:?} n={n} m={m}: without GFNI");
                        }
                        let scale = want.iter().flatten().fold(0f32, |a, v| a.max(v.abs()));
                        // Q4_1/Q5_1 add min × (d·Σq) per block; llama.cpp rounds d·Σq to f16 once,
                        // candle multiplies f16(Σq) by f16(d) in f16: up to 2^-10 of each block's term.
                        let tol = match dt {
                            GgmlDType::Q4_1 | GgmlDType::Q5_1 => 3e-3,
                            _ => 1e-4,
                        };
                        for (i, (gr, wr)) in got.iter().zip(&want).enumerate() {
                            for (j, (g, e)) in gr.iter().zip(wr).enumerate() {
                                assert!(
                                (g - e).abs() <= tol * scale + ties[i],
                                "{dt:?} {isa:?} tiles={tiles} n={n} m={m} [{i},{j}]: qeval {g} vs candle {e}"
                            );
                            }
                        }
                    }
                }
            }
        }
    }

    /// A token embedding read from tiles equals candle's dequantization of the same rows.
    #[test]
    fn tiled_embedding_rows_match_candle_dequantization() {
        if detect() != Some(Isa::Avx512Vnni) {
            eprintln!("no AVX-512 VNNI here: no tiles to read");
            return;
        }
        let dev = Device::Cpu;
        for dt in [
            GgmlDType::Q4_0,
            GgmlDType::Q4_1,
            GgmlDType::Q5_0,
            GgmlDType::Q5_1,
            GgmlDType::Q8_0,
        ] {
            let w = Tensor::randn(0f32, 1.0, (48, 96), &dev).unwrap();
            let q = Arc::new(QTensor::quantize(&w, dt).unwrap());
            let want = q.dequantize(&dev).unwrap().to_vec2::<f32>().unwrap();
            let op = QMatMulOp::with_isa(q, Isa::Avx512Vnni, true).unwrap();
            let ids = [0u32, 15, 16, 47, 21];
            let got = op.embedding(&ids).unwrap().to_vec2::<f32>().unwrap();
            for (row, &id) in got.iter().zip(&ids) {
                assert_eq!(row, &want[id as usize], "{dt:?} row {id}");
            }
            assert!(op.embedding(&[48]).is_err());
        }
    }

    #[test]
    fn activation_quantization_matches_llama_cpp_rules() {
        // Block of 32: scale amax/127 rounded to f16, values rounded to nearest (ties even).
        let x: Vec<f32> = (0..32).map(|i| i as f32 - 15.5).collect();
        let a = QActs::quantize(&x, 1, 32, 32);
        assert_eq!(a.qs[31], 127);
        assert_eq!(a.qs[0], -127);
        assert_eq!(a.qs[16], 4); // 0.5 × 127/15.5 = 4.10
        assert_eq!(a.d[0], half::f16::from_f32(15.5 / 127.0).to_f32());
        let sum: i32 = a.qs.iter().map(|&v| v as i32).sum();
        assert_eq!(
            a.s[0],
            half::f16::from_f32(15.5 / 127.0 * sum as f32).to_f32()
        );
        // Block of 256: the largest magnitude maps to -127 and the sums of 16 are kept.
        let x: Vec<f32> = (0..256).map(|i| (i as f32 - 100.0) / 7.0).collect();
        let a = QActs::quantize(&x, 1, 256, 256);
        assert_eq!(a.qs[255], -127);
        assert_eq!(
            a.bsums[0],
            a.qs[..16].iter().map(|&v| v as i16).sum::<i16>()
        );
    }
}
