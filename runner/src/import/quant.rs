//! GGML block formats: decoding tensors to f32 (for `--precision fp32` and reference checks), describing each
//! quantized block as the integer levels, scale and offset MatMulNBits can hold, and encoding blocks for
//! generated test models (Q4_1 / Q8_0 from values, every other type from random but valid bytes).
//!
//! Layouts follow llama.cpp's `ggml-quants.c`. Every quantized type is read as blocks of unsigned levels `q`
//! with a float `scale` and either an integer zero `z` (`w = scale * (q - z)`: Q4_0, Q5_0, Q8_0, Q3_K, Q6_K) or
//! a float offset `m` (`w = scale * q + m`: Q4_1, Q5_1, Q2_K, Q4_K, Q5_K). Both are evaluated in f32 in
//! ggml's order, so decoding is bit for bit ggml's `dequantize_row_*`: a K-quant's sub-block scale is the f32
//! product `d * sc` ggml forms first, and its offset `-(dmin * m)` (`a - b` equals `a + -b` in IEEE).

use half::f16;

use crate::gguf::GgmlType;

/// Elements per Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0 block, and per K-quant sub-block of Q4_K / Q5_K.
pub const QK: usize = 32;
/// Elements per K-quant super-block.
pub const QK_K: usize = 256;
pub const Q4_0_BLOCK_BYTES: usize = 18;
pub const Q4_1_BLOCK_BYTES: usize = 20;
pub const Q8_0_BLOCK_BYTES: usize = 34;

/// A tensor type this module cannot decode.
#[derive(Debug, thiserror::Error)]
#[error("cannot decode {0} data")]
pub struct UnsupportedType(pub GgmlType);

fn read_f16(bytes: &[u8]) -> f32 {
    f16::from_le_bytes([bytes[0], bytes[1]]).to_f32()
}

/// How a block's levels become weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Offset {
    /// `w = scale * (q - z)`.
    Zero(u8),
    /// `w = scale * q + m`.
    Min(f32),
}

/// One block of a quantized row: up to 32 unsigned levels sharing a scale and an offset.
#[derive(Debug, Clone, Copy)]
pub struct IntBlock {
    pub q: [u8; QK],
    pub len: usize,
    pub scale: f32,
    pub offset: Offset,
}

impl IntBlock {
    fn new(len: usize, scale: f32, offset: Offset, level: impl Fn(usize) -> u8) -> Self {
        let mut q = [0u8; QK];
        for (i, slot) in q.iter_mut().take(len).enumerate() {
            *slot = level(i);
        }
        Self { q, len, scale, offset }
    }

    pub fn levels(&self) -> &[u8] {
        &self.q[..self.len]
    }

    /// The block's weights, as ggml computes them.
    pub fn values(&self) -> impl Iterator<Item = f32> + '_ {
        self.levels().iter().map(move |&q| match self.offset {
            Offset::Zero(z) => self.scale * (f32::from(q) - f32::from(z)),
            Offset::Min(m) => self.scale * f32::from(q) + m,
        })
    }
}

/// The MatMulNBits form that holds a type's blocks without loss: levels of `bits` bits in blocks of `block`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IntLayout {
    pub bits: u8,
    pub block: usize,
}

/// The layout of a quantized type's blocks: 4 bits where the levels fit (Q2_K's 2-bit and Q3_K's 3-bit levels
/// too: MatMulNBits' 2-bit kernels are not on every CPU path), 8 bits for the 5-, 6- and 8-bit ones; blocks of
/// 16 where the type's scales are per 16 elements (Q2_K, Q3_K, Q6_K). `None` for float and unknown types.
pub fn int_layout(ty: GgmlType) -> Option<IntLayout> {
    let (bits, block) = match ty {
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q4K => (4, 32),
        GgmlType::Q2K | GgmlType::Q3K => (4, 16),
        GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0 | GgmlType::Q5K => (8, 32),
        GgmlType::Q6K => (8, 16),
        _ => return None,
    };
    Some(IntLayout { bits, block })
}

/// Whether `ty`'s blocks carry a float offset (`w = scale * q + m`) rather than an integer zero.
pub fn has_float_offsets(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q2K | GgmlType::Q4K | GgmlType::Q5K)
}

/// The 6-bit scale and min of sub-block `j` of a Q4_K / Q5_K super-block (ggml's `get_scale_min_k4`).
fn scale_min_k4(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        ((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
    }
}

/// The 6-bit scale of sub-block `i` of a Q3_K super-block, before its offset of 32: the low nibbles sit in
/// bytes 0..8 (sub-blocks 8..16 in the high nibble), the top two bits in bytes 8..12.
fn scale_q3_k(i: usize, s: &[u8]) -> u8 {
    let low = if i < 8 { s[i] & 0xF } else { s[i - 8] >> 4 };
    let high = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
    low | (high << 4)
}

/// Calls `f` with every block of `bytes`, a whole number of `ty`'s blocks, in element order.
pub fn for_each_block(ty: GgmlType, bytes: &[u8], mut f: impl FnMut(&IntBlock)) -> Result<(), UnsupportedType> {
    let block_bytes = match ty.block_size() {
        Some(size) if int_layout(ty).is_some() => size.bytes as usize,
        _ => return Err(UnsupportedType(ty)),
    };
    for b in bytes.chunks_exact(block_bytes) {
        match ty {
            GgmlType::Q4_0 | GgmlType::Q4_1 => {
                let (offset, qs) = if ty == GgmlType::Q4_0 {
                    (Offset::Zero(8), &b[2..18])
                } else {
                    (Offset::Min(read_f16(&b[2..4])), &b[4..20])
                };
                f(&IntBlock::new(
                    QK,
                    read_f16(&b[0..2]),
                    offset,
                    |j| {
                        if j < 16 { qs[j] & 0xF } else { qs[j - 16] >> 4 }
                    },
                ));
            }
            GgmlType::Q5_0 | GgmlType::Q5_1 => {
                let (offset, rest) = if ty == GgmlType::Q5_0 {
                    (Offset::Zero(16), &b[2..])
                } else {
                    (Offset::Min(read_f16(&b[2..4])), &b[4..])
                };
                let qh = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
                let qs = &rest[4..20];
                f(&IntBlock::new(QK, read_f16(&b[0..2]), offset, |j| {
                    let low = if j < 16 { qs[j] & 0xF } else { qs[j - 16] >> 4 };
                    low | (((qh >> j) & 1) as u8) << 4
                }));
            }
            GgmlType::Q8_0 => {
                // int8 levels as unsigned with a zero of 128: the same products, `q - z` being exact.
                f(&IntBlock::new(QK, read_f16(&b[0..2]), Offset::Zero(128), |j| b[2 + j].wrapping_add(128)));
            }
            GgmlType::Q2K => {
                let (scales, qs) = (&b[0..16], &b[16..80]);
                let (d, dmin) = (read_f16(&b[80..82]), read_f16(&b[82..84]));
                for (i, &sc) in scales.iter().enumerate() {
                    // Sub-block i: 16 bytes of `qs` from (i / 8) * 32 + (i % 2) * 16, shifted by 2 * ((i / 2) % 4).
                    let (base, shift) = ((i / 8) * 32 + (i % 2) * 16, 2 * ((i / 2) % 4));
                    let offset = Offset::Min(-(dmin * f32::from(sc >> 4)));
                    f(&IntBlock::new(16, d * f32::from(sc & 0xF), offset, |l| (qs[base + l] >> shift) & 3));
                }
            }
            GgmlType::Q3K => {
                let (hmask, qs, scales) = (&b[0..32], &b[32..96], &b[96..108]);
                let d = read_f16(&b[108..110]);
                for i in 0..16 {
                    let (base, shift, bit) = ((i / 8) * 32 + (i % 2) * 16, 2 * ((i / 2) % 4), (i / 2) % 8);
                    let scale = d * (f32::from(scale_q3_k(i, scales)) - 32.0);
                    // Levels -4..=3 (the high bit set means no -4), held as 0..=7 with a zero of 4.
                    f(&IntBlock::new(16, scale, Offset::Zero(4), |l| {
                        let low = (qs[base + l] >> shift) & 3;
                        let high = (hmask[(i % 2) * 16 + l] >> bit) & 1;
                        low + 4 * high
                    }));
                }
            }
            GgmlType::Q4K | GgmlType::Q5K => {
                let (d, dmin) = (read_f16(&b[0..2]), read_f16(&b[2..4]));
                let scales = &b[4..16];
                let (qh, qs) = if ty == GgmlType::Q5K { (Some(&b[16..48]), &b[48..176]) } else { (None, &b[16..144]) };
                for j in 0..8 {
                    let (sc, m) = scale_min_k4(j, scales);
                    let offset = Offset::Min(-(dmin * f32::from(m)));
                    let (chunk, shift) = (&qs[32 * (j / 2)..32 * (j / 2) + 32], 4 * (j % 2));
                    f(&IntBlock::new(QK, d * f32::from(sc), offset, |l| {
                        let low = (chunk[l] >> shift) & 0xF;
                        qh.map_or(low, |qh| low | ((qh[l] >> j) & 1) << 4)
                    }));
                }
            }
            GgmlType::Q6K => {
                let (ql, qh, scales) = (&b[0..128], &b[128..192], &b[192..208]);
                let d = read_f16(&b[208..210]);
                for (i, &sc) in scales.iter().enumerate() {
                    // Sub-block i: half n = i / 8 of the super-block, quarter p = (i / 2) % 4 of that half.
                    let (n, p, first) = (i / 8, (i / 2) % 4, (i % 2) * 16);
                    let low = &ql[64 * n + 32 * (p % 2)..];
                    let high = &qh[32 * n..];
                    let scale = d * f32::from(sc as i8);
                    f(&IntBlock::new(16, scale, Offset::Zero(32), |l| {
                        let lo = (low[first + l] >> (4 * (p / 2))) & 0xF;
                        lo | ((high[first + l] >> (2 * p)) & 3) << 4
                    }));
                }
            }
            other => return Err(UnsupportedType(other)),
        }
    }
    Ok(())
}

/// Decodes `bytes` of type `ty` into f32 values, appending to `out`.
pub fn dequantize_into(ty: GgmlType, bytes: &[u8], out: &mut Vec<f32>) -> Result<(), UnsupportedType> {
    match ty {
        GgmlType::F32 => {
            out.extend(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
        }
        GgmlType::F16 => out.extend(bytes.chunks_exact(2).map(read_f16)),
        GgmlType::Bf16 => {
            out.extend(bytes.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()));
        }
        _ => for_each_block(ty, bytes, |block| out.extend(block.values()))?,
    }
    Ok(())
}

/// Decodes a whole tensor into f32 values.
pub fn dequantize(ty: GgmlType, bytes: &[u8]) -> Result<Vec<f32>, UnsupportedType> {
    let mut out = Vec::new();
    dequantize_into(ty, bytes, &mut out)?;
    Ok(out)
}

/// Encodes values (a multiple of 32) as Q4_1 blocks, rounding like llama.cpp's reference quantizer.
pub fn quantize_q4_1(values: &[f32]) -> Vec<u8> {
    assert!(values.len().is_multiple_of(QK), "Q4_1 needs whole blocks of {QK}");
    let mut out = Vec::with_capacity(values.len() / QK * Q4_1_BLOCK_BYTES);
    for block in values.chunks_exact(QK) {
        let min = block.iter().copied().fold(f32::INFINITY, f32::min);
        let max = block.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let d = (max - min) / 15.0;
        let inv = if d == 0.0 { 0.0 } else { 1.0 / d };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        out.extend_from_slice(&f16::from_f32(min).to_le_bytes());
        let q = |x: f32| (((x - min) * inv + 0.5) as u8).min(15);
        for j in 0..QK / 2 {
            out.push(q(block[j]) | (q(block[j + QK / 2]) << 4));
        }
    }
    out
}

/// Encodes values (a multiple of 32) as Q8_0 blocks, rounding like llama.cpp's reference quantizer.
pub fn quantize_q8_0(values: &[f32]) -> Vec<u8> {
    assert!(values.len().is_multiple_of(QK), "Q8_0 needs whole blocks of {QK}");
    let mut out = Vec::with_capacity(values.len() / QK * Q8_0_BLOCK_BYTES);
    for block in values.chunks_exact(QK) {
        let amax = block.iter().fold(0f32, |a, x| a.max(x.abs()));
        let d = amax / 127.0;
        let inv = if d == 0.0 { 0.0 } else { 1.0 / d };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        out.extend(block.iter().map(|x| (x * inv).round() as i8 as u8));
    }
    out
}

/// Float rows quantized for MatMulNBits' `B`: `bits` (4 or 8) per weight in blocks of `block` along a row, asymmetric
/// like ONNX Runtime's own MatMulNBits quantizer (`is_symmetric=False`): each block's range is stretched to include
/// 0, `scale = (max - min) / (2^bits - 1)`, the zero point `round(-min / scale)` is an unsigned level, and
/// `w = (q - zp) * scale` is within `scale / 2` of the float. A row whose length is not a whole number of blocks
/// is padded with zeros.
#[derive(Debug, Clone)]
pub struct NbitsBlocks {
    pub bits: u8,
    pub block: usize,
    /// Elements per row (MatMulNBits' `K`).
    pub k: usize,
    pub rows: usize,
    /// `[rows, blocks, block * bits / 8]`; at 4 bits byte `i` holds elements `2i` (low nibble) and `2i + 1`.
    pub data: Vec<u8>,
    /// `[rows, blocks]`.
    pub scales: Vec<f32>,
    /// `[rows, blocks]` at 8 bits; `[rows, ceil(blocks / 2)]` at 4, block `2j` in the low nibble of byte `j`.
    pub zero_points: Vec<u8>,
}

impl NbitsBlocks {
    pub fn new(bits: u8, block: usize, k: usize) -> Self {
        assert!(bits == 4 || bits == 8, "MatMulNBits blocks of {bits} bits");
        assert!(block >= 16 && block.is_power_of_two(), "MatMulNBits block size {block}");
        Self { bits, block, k, rows: 0, data: Vec::new(), scales: Vec::new(), zero_points: Vec::new() }
    }

    /// Blocks per row (`ceil(k / block)`).
    pub fn blocks(&self) -> usize {
        self.k.div_ceil(self.block)
    }

    /// Zero-point bytes per row.
    pub fn zero_point_stride(&self) -> usize {
        if self.bits == 4 { self.blocks().div_ceil(2) } else { self.blocks() }
    }

    /// Quantizes and appends one row of `k` values.
    pub fn push_row(&mut self, values: &[f32]) {
        assert_eq!(values.len(), self.k, "a row of {} values", self.k);
        let top = ((1u32 << self.bits) - 1) as f32;
        let zp_start = self.zero_points.len();
        self.zero_points.resize(zp_start + self.zero_point_stride(), 0);
        let mut levels = vec![0u8; self.block];
        for (b, chunk) in values.chunks(self.block).enumerate() {
            let min = chunk.iter().copied().fold(0f32, f32::min);
            let max = chunk.iter().copied().fold(0f32, f32::max);
            let scale = (max - min) / top;
            let zp = if scale == 0.0 { 0.0 } else { (-min / scale).round().clamp(0.0, top) };
            levels.fill(zp as u8);
            if scale != 0.0 {
                for (level, x) in levels.iter_mut().zip(chunk) {
                    *level = (x / scale + zp).round().clamp(0.0, top) as u8;
                }
            }
            self.scales.push(scale);
            if self.bits == 4 {
                self.zero_points[zp_start + b / 2] |= (zp as u8) << (4 * (b % 2));
                self.data.extend(levels.chunks_exact(2).map(|pair| pair[0] | (pair[1] << 4)));
            } else {
                self.zero_points[zp_start + b] = zp as u8;
                self.data.extend_from_slice(&levels);
            }
        }
        self.rows += 1;
    }

    /// Row `r` as MatMulNBits reads it back: `(q - zp) * scale`, without the padding.
    pub fn dequantize_row(&self, r: usize) -> Vec<f32> {
        let (blocks, stride) = (self.blocks(), self.zero_point_stride());
        let bytes_per_block = self.block * usize::from(self.bits) / 8;
        let mut out = Vec::with_capacity(blocks * self.block);
        for b in 0..blocks {
            let scale = self.scales[r * blocks + b];
            let zp_byte = self.zero_points[r * stride + if self.bits == 4 { b / 2 } else { b }];
            let zp = if self.bits == 4 { (zp_byte >> (4 * (b % 2))) & 0xF } else { zp_byte };
            let start = (r * blocks + b) * bytes_per_block;
            let bytes = &self.data[start..start + bytes_per_block];
            let level = |i: usize| if self.bits == 4 { (bytes[i / 2] >> (4 * (i % 2))) & 0xF } else { bytes[i] };
            out.extend((0..self.block).map(|i| (f32::from(level(i)) - f32::from(zp)) * scale));
        }
        out.truncate(self.k);
        out
    }
}

/// Random but valid blocks of `ty` for `elements` values (a whole number of blocks): random level and sub-scale
/// bytes, with the f16 super-scales set so that weights stay within about `amplitude`. Test models use it for
/// the types that have no encoder here; any bytes are a valid K-quant block once its f16 scales are finite.
pub fn random_blocks(ty: GgmlType, elements: usize, amplitude: f32, rng: &mut crate::rng::SplitMix64) -> Vec<u8> {
    let size = ty.block_size().unwrap_or_else(|| panic!("{ty} has no block size"));
    let (per_block, block_bytes) = (size.elements as usize, size.bytes as usize);
    assert!(elements.is_multiple_of(per_block), "{ty} needs whole blocks of {per_block}");
    // (offset of an f16 field, its value): the largest level times the largest sub-scale spans `amplitude`.
    let a = amplitude;
    let fields: &[(usize, f32)] = match ty {
        GgmlType::Q4_0 => &[(0, a / 8.0)],
        GgmlType::Q4_1 => &[(0, a / 8.0), (2, -a)],
        GgmlType::Q5_0 => &[(0, a / 16.0)],
        GgmlType::Q5_1 => &[(0, a / 16.0), (2, -a)],
        GgmlType::Q8_0 => &[(0, a / 128.0)],
        GgmlType::Q2K => &[(80, 2.0 * a / 45.0), (82, a / 15.0)],
        GgmlType::Q3K => &[(108, a / 128.0)],
        GgmlType::Q4K => &[(0, 2.0 * a / 945.0), (2, a / 63.0)],
        GgmlType::Q5K => &[(0, 2.0 * a / 1953.0), (2, a / 63.0)],
        GgmlType::Q6K => &[(208, a / 4096.0)],
        other => panic!("no random blocks for {other}"),
    };
    let mut out = vec![0u8; elements / per_block * block_bytes];
    for block in out.chunks_exact_mut(block_bytes) {
        for byte in block.iter_mut() {
            *byte = rng.next_u64() as u8;
        }
        for &(at, value) in fields {
            block[at..at + 2].copy_from_slice(&f16::from_f32(value).to_le_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(n: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 40.0).collect()
    }

    #[test]
    fn q4_1_round_trip_is_within_half_a_step() {
        let values = ramp(128);
        let decoded = dequantize(GgmlType::Q4_1, &quantize_q4_1(&values)).unwrap();
        assert_eq!(decoded.len(), values.len());
        for (block, got) in values.chunks(QK).zip(decoded.chunks(QK)) {
            let step = (block.iter().copied().fold(f32::MIN, f32::max)
                - block.iter().copied().fold(f32::MAX, f32::min))
                / 15.0;
            for (a, b) in block.iter().zip(got) {
                assert!((a - b).abs() <= step * 0.5 + 1e-2, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn q8_0_round_trip_is_close() {
        let values = ramp(96);
        let decoded = dequantize(GgmlType::Q8_0, &quantize_q8_0(&values)).unwrap();
        for (a, b) in values.iter().zip(&decoded) {
            assert!((a - b).abs() < 1e-2, "{a} vs {b}");
        }
    }

    /// `fixtures/quants/TYPE.bin` decoded, against `TYPE.f32`: what the `gguf` package's
    /// `gguf.quants.dequantize` gives for the same random blocks (made by `fixtures/quants/make.py`).
    #[test]
    fn every_type_decodes_bit_for_bit_like_ggml() {
        macro_rules! fixture {
            ($ty:expr, $name:literal) => {
                (
                    $ty,
                    &include_bytes!(concat!("fixtures/quants/", $name, ".bin"))[..],
                    &include_bytes!(concat!("fixtures/quants/", $name, ".f32"))[..],
                )
            };
        }
        let fixtures = [
            fixture!(GgmlType::Q4_0, "Q4_0"),
            fixture!(GgmlType::Q4_1, "Q4_1"),
            fixture!(GgmlType::Q5_0, "Q5_0"),
            fixture!(GgmlType::Q5_1, "Q5_1"),
            fixture!(GgmlType::Q8_0, "Q8_0"),
            fixture!(GgmlType::Q2K, "Q2_K"),
            fixture!(GgmlType::Q3K, "Q3_K"),
            fixture!(GgmlType::Q4K, "Q4_K"),
            fixture!(GgmlType::Q5K, "Q5_K"),
            fixture!(GgmlType::Q6K, "Q6_K"),
        ];
        for (ty, blocks, expected) in fixtures {
            let got = dequantize(ty, blocks).unwrap();
            let want = dequantize(GgmlType::F32, expected).unwrap();
            assert_eq!(got.len(), 512, "{ty}");
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.to_bits(), w.to_bits(), "{ty} element {i}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn random_blocks_decode_within_their_amplitude() {
        let mut rng = crate::rng::SplitMix64::new(3);
        for ty in [GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q2K, GgmlType::Q3K, GgmlType::Q4K]
            .into_iter()
            .chain([GgmlType::Q5K, GgmlType::Q6K, GgmlType::Q8_0])
        {
            let values = dequantize(ty, &random_blocks(ty, 512, 0.5, &mut rng)).unwrap();
            assert_eq!(values.len(), 512, "{ty}");
            let max = values.iter().fold(0f32, |a, v| a.max(v.abs()));
            assert!(max > 0.05 && max <= 1.01, "{ty}: largest weight {max}");
        }
    }

    #[test]
    fn nbits_blocks_are_within_half_a_step_and_pad_short_blocks() {
        for (bits, k) in [(4u8, 96usize), (8, 96), (4, 80), (8, 40)] {
            let rows: Vec<Vec<f32>> =
                (0..3).map(|r| ramp(k).iter().map(|v| v * (r as f32 + 0.5) + 0.1).collect()).collect();
            let mut q = NbitsBlocks::new(bits, 32, k);
            rows.iter().for_each(|row| q.push_row(row));
            let blocks = k.div_ceil(32);
            assert_eq!((q.rows, q.scales.len()), (3, 3 * blocks));
            assert_eq!(q.data.len(), 3 * blocks * 32 * usize::from(bits) / 8);
            assert_eq!(q.zero_points.len(), 3 * if bits == 4 { blocks.div_ceil(2) } else { blocks });
            for (r, row) in rows.iter().enumerate() {
                let back = q.dequantize_row(r);
                assert_eq!(back.len(), k);
                for (i, (a, b)) in row.iter().zip(&back).enumerate() {
                    let step = q.scales[r * blocks + i / 32];
                    assert!((a - b).abs() <= step * 0.5 + 1e-6, "{bits}-bit row {r} element {i}: {a} vs {b}");
                }
            }
        }
        // An all-zero block is exact, with a zero scale; a constant one is within half a step.
        for bits in [4, 8] {
            let mut q = NbitsBlocks::new(bits, 32, 64);
            q.push_row(&[[0.0; 32], [0.5; 32]].concat());
            let back = q.dequantize_row(0);
            assert_eq!((q.scales[0], &back[..32]), (0.0, &[0.0; 32][..]));
            assert!(back[32..].iter().all(|v| (v - 0.5).abs() <= q.scales[1] / 2.0 + 1e-6), "{back:?}");
        }
    }

    #[test]
    fn types_without_a_decoder_are_refused() {
        assert!(dequantize(GgmlType::Q8K, &[0; 292]).is_err());
        assert!(dequantize(GgmlType::Other(39), &[0; 16]).is_err());
    }
}
