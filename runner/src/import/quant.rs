//! GGML block formats: decoding tensors to f32 (for `--precision fp32` and reference checks) and encoding
//! f32 into Q4_1 / Q8_0 blocks (for generated test models).
//!
//! Layouts follow llama.cpp: a Q4_1 block is `d: f16, m: f16, qs: [u8; 16]` with element `j` in the low
//! nibble of `qs[j]` and element `j + 16` in its high nibble, value `d * q + m`; a Q8_0 block is
//! `d: f16, qs: [i8; 32]`, value `d * q`.

use half::f16;

use crate::gguf::GgmlType;

/// Elements per Q4_1 / Q8_0 block.
pub const QK: usize = 32;
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
        GgmlType::Q4_1 => {
            for block in bytes.chunks_exact(Q4_1_BLOCK_BYTES) {
                let (d, m) = (read_f16(&block[0..2]), read_f16(&block[2..4]));
                let qs = &block[4..];
                out.extend(qs.iter().map(|q| d * f32::from(q & 0xF) + m));
                out.extend(qs.iter().map(|q| d * f32::from(q >> 4) + m));
            }
        }
        GgmlType::Q4_0 => {
            for block in bytes.chunks_exact(Q4_0_BLOCK_BYTES) {
                let d = read_f16(&block[0..2]);
                let qs = &block[2..];
                out.extend(qs.iter().map(|q| d * (f32::from(q & 0xF) - 8.0)));
                out.extend(qs.iter().map(|q| d * (f32::from(q >> 4) - 8.0)));
            }
        }
        GgmlType::Q8_0 => {
            for block in bytes.chunks_exact(Q8_0_BLOCK_BYTES) {
                let d = read_f16(&block[0..2]);
                out.extend(block[2..].iter().map(|q| d * f32::from(*q as i8)));
            }
        }
        other => return Err(UnsupportedType(other)),
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

    #[test]
    fn k_quants_are_refused() {
        assert!(dequantize(GgmlType::Q6K, &[0; 210]).is_err());
    }
}
