//! Which GGUF architectures the importer reads, and what each adds to the llama block: how llama.cpp's
//! converter stored the Q/K rows for its rotary, query/key/value biases, per-head query/key RMS norms, fused
//! projections, Gemma's embedding scale, post-norms, GELU, soft-capping and sliding windows. Phi-3's
//! `attention.sliding_window` is left unapplied, as llama.cpp leaves it (it disables Phi SWA).
//! Mistral needs no entry of its own: llama.cpp's converter writes `MistralForCausalLM` as `llama`.

/// An architecture the importer builds a graph for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    Qwen2,
    Qwen3,
    Phi3,
    Gemma2,
    Gemma3,
}

impl Architecture {
    /// The architecture named by `general.architecture`, if the importer supports it.
    pub fn from_gguf_name(name: &str) -> Option<Self> {
        match name {
            "llama" => Some(Self::Llama),
            "qwen2" => Some(Self::Qwen2),
            "qwen3" => Some(Self::Qwen3),
            "phi3" => Some(Self::Phi3),
            "gemma2" => Some(Self::Gemma2),
            "gemma3" => Some(Self::Gemma3),
            _ => None,
        }
    }

    /// The names `runner import` accepts, for error messages.
    pub const SUPPORTED: &'static str =
        "llama (and Mistral, which llama.cpp stores as llama), qwen2, qwen3, phi3, gemma2, gemma3";

    /// llama.cpp's converter permutes Q and K rows per head for its interleaved ("normal") rotary; the
    /// NEOX-rotary architectures keep Hugging Face's row order.
    pub fn permutes_qk_rows(self) -> bool {
        matches!(self, Self::Llama)
    }

    /// `blk.N.attn_{q,k,v}.bias` are part of the model (Qwen2's attention has them).
    pub fn has_qkv_bias(self) -> bool {
        matches!(self, Self::Qwen2)
    }

    /// One `blk.N.attn_qkv.weight` holds the Q, K and V rows (Phi-3).
    pub fn fuses_qkv(self) -> bool {
        matches!(self, Self::Phi3)
    }

    /// `blk.N.ffn_up.weight` holds the gate rows, then the up rows, and there is no `ffn_gate` (Phi-3).
    pub fn fuses_gate_up(self) -> bool {
        matches!(self, Self::Phi3)
    }

    /// `blk.N.attn_{q,k}_norm.weight`: an RMS norm over each head of Q and K before the rotary (Qwen3).
    pub fn has_qk_norm(self) -> bool {
        matches!(self, Self::Qwen3 | Self::Gemma3)
    }

    /// Gemma multiplies the token embedding by sqrt(embedding width) before the first block.
    pub fn scales_embedding(self) -> bool {
        matches!(self, Self::Gemma2 | Self::Gemma3)
    }

    /// `blk.N.post_attention_norm` and `blk.N.post_ffw_norm`: RMS norms of the attention and MLP outputs before
    /// they join the residual stream (Gemma 2 and 3).
    pub fn has_post_norms(self) -> bool {
        matches!(self, Self::Gemma2 | Self::Gemma3)
    }

    /// The MLP's gate goes through GELU (tanh approximation, as llama.cpp and Gemma compute it), not SiLU.
    pub fn gelu_gate(self) -> bool {
        matches!(self, Self::Gemma2 | Self::Gemma3)
    }

    /// Tensors llama.cpp loads for this architecture but never uses for the language model's logits, so runner
    /// may leave them out: Qwen3's reranker head (`cls_out`, used only when llama.cpp pools for ranking) and
    /// Gemma 3's sentence-transformers projections (`dense_2_out`, `dense_3_out`, used only for embeddings).
    /// llama.cpp refuses a GGUF holding any tensor its architecture does not load.
    pub fn tensors_llama_cpp_leaves_unused(self) -> &'static [&'static str] {
        match self {
            Self::Qwen3 => &["cls_out.weight"],
            Self::Gemma3 => &["dense_2_out.weight", "dense_3_out.weight"],
            _ => &[],
        }
    }

    /// Layers that attend within a sliding window: llama.cpp's pattern `n` makes layer `i` local when
    /// `i % n < n - 1` (Gemma 2: every other layer from the first; Gemma 3: five local, then one global).
    /// `None`: no sliding window (Phi-3 declares one, but llama.cpp disables Phi SWA).
    pub fn default_window_pattern(self) -> Option<usize> {
        match self {
            Self::Gemma2 => Some(2),
            Self::Gemma3 => Some(6),
            _ => None,
        }
    }
}
