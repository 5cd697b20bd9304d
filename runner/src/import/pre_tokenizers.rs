//! The byte-level BPE pre-tokenizers a GGUF names in `tokenizer.ggml.pre`, as `tokenizer.json` pre-tokenizers
//! that split text where llama.cpp splits it. llama.cpp (src/llama-vocab.cpp) maps each name to a list of regexes,
//! each splitting the pieces the one before left (unmatched stretches stay pieces of their own), then maps bytes
//! to GPT-2's symbols: here a `Split` (behaviour `Isolated`) per regex, then `ByteLevel` without its own regex.
//! The regexes are llama.cpp's own strings, including its adaptations of the original tokenizers' (contractions
//! spelled `'[sS]|...` for `(?i:...)`; `((?=[\p{L}])([^a-z]))` for `\p{Lu}`, which llama.cpp's regex engine cannot
//! tell from other letters), so `tokenizers` runs what llama.cpp runs. Every name here is checked against
//! llama.cpp's ids in llama_cpp_tests.rs. Left out: names whose tokenizers llama.cpp handles in code beyond
//! regexes (kimi-k2, afmoe, tiny_aya, cohere2moe, superbpe's zero-width split), without byte-level symbols
//! (gemma4, granite-embed-multi-311m, sarvam-moe, whitespace), BERT-style ones that add a separator (jina-*,
//! roberta-bpe, modern-bert), chameleon's image sentinels and the GLM names, which have no BOS.

use serde_json::{Value, json};

/// llama.cpp's DEFAULT.
const DEFAULT: &[&str] = &[
    "[\\p{P}\\$\\+<=>\\^~\\|]+",
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
    "\\p{N}+",
    "[0-9][0-9][0-9]",
];

/// llama.cpp's MINICPM5.
const MINICPM5: &[&str] = &[
    "\\p{N}{1,3}",
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}+| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
];

/// llama.cpp's DBRX, LLAMA3, SMAUG.
const LLAMA3: &[&str] = &[
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
];

/// llama.cpp's DEEPSEEK_LLM.
const DEEPSEEK_LLM: &[&str] = &[
    "[\r\n]",
    "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
    "\\s?[!-/:-~！-／：-～‘-‟　-。]+",
    "\\s+$",
    "[一-龥ࠀ-一가-퟿]+",
    "\\p{N}+",
];

/// llama.cpp's DEEPSEEK_CODER.
const DEEPSEEK_CODER: &[&str] = &["[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}"];

/// llama.cpp's DEEPSEEK3_LLM, HUNYUAN_DENSE, HY_V4, JOYAI_LLM.
const DEEPSEEK_V3: &[&str] = &[
    "\\p{N}{1,3}",
    "[一-龥぀-ゟ゠-ヿ]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
];

/// llama.cpp's SPARK2_5.
const SPARK2_5: &[&str] = &[
    "\\p{N}{1,3}",
    "[一-龥぀-ゟ゠-ヿ]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+|[\r\n]|\\s+(?!\\S)|\\s+",
    "\\p{N}",
];

/// llama.cpp's YOUTU.
const YOUTU: &[&str] = &[
    "[가-힣ㄱ-ㆎ]+|[！…“”‘’—：；，、-〿︰-﹏]+|[ㄅ-ㄯ]+|[一-龥぀-ゟ゠-ヿ]+",
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
];

/// llama.cpp's FALCON.
const FALCON: &[&str] = &[
    "[\\p{P}\\$\\+<=>\\^~\\|`]+",
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
    "[0-9][0-9][0-9]",
];

/// llama.cpp's GPT2, GRANITE_DOCLING, JAIS, MPT, OLMO, TRILLION.
const GPT2: &[&str] = &["'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"];

/// llama.cpp's CODESHELL, COMMAND_R, EXAONE, MELLUM2, MINERVA, REFACT, SMOLLM, STARCODER.
const STARCODER: &[&str] = &["\\p{N}", "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"];

/// llama.cpp's JAIS2.
const JAIS2: &[&str] = &[
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s{512}(?!\\S)|\\s{256}(?!\\S)|\\s{128}(?!\\S)|\\s{64}(?!\\S)|\\s{32}(?!\\S)|\\s{16}(?!\\S)|\\s{8}(?!\\S)|\\s{4}(?!\\S)|\\s{1,2}(?!\\S)|\\s{1}",
];

/// llama.cpp's GROK_2, HUNYUAN, QWEN2, SOLAR_OPEN, STABLELM2.
const QWEN2: &[&str] = &[
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
];

/// llama.cpp's QWEN35.
const QWEN35: &[&str] = &[
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
];

/// llama.cpp's BLOOM, GPT3_FINNISH, PORO.
const BLOOM: &[&str] = &[" ?[^(\\s|.,!?…。，、।۔،)]+"];

/// llama.cpp's VIKING.
const VIKING: &[&str] = &[" ?[^(\\s|.,!?…。，、।۔،)]+", "\\p{N}"];

/// llama.cpp's TEKKEN.
const TEKKEN: &[&str] = &[
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
];

/// llama.cpp's EXAONE_MOE.
const EXAONE_MOE: &[&str] = &[
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?(?:\\p{L}\\p{M}*(?: \\p{L}\\p{M}*)*)+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]?|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+",
];

/// llama.cpp's GPT4O, MINIMAX_M2.
const GPT4O: &[&str] = &[
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
];

/// llama.cpp's GRANITE_EMB_MULTI.
const GRANITE_EMB_MULTI: &[&str] = &[
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}\\p{M}])([^a-z]))*((?=[\\p{L}\\p{M}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}\\p{M}])([^a-z]))+((?=[\\p{L}\\p{M}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
];

/// llama.cpp's BAILINGMOE.
const BAILINGMOE: &[&str] = &[
    "'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+",
];

/// llama.cpp's SEED_CODER.
const SEED_CODER: &[&str] = &[
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
];

/// llama.cpp's UFAKZEKA.
const UFAKZEKA: &[&str] =
    &["[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"];

/// llama.cpp's LAGUNA.
const LAGUNA: &[&str] = &[
    "[^\\n]+|[\\n]+",
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
];

/// The `tokenizer.ggml.pre` names runner reads, for error messages.
pub const KNOWN: &str = "a.x-4.0, bailingmoe, bailingmoe2, bloom, codeshell, command-r, dbrx, deepseek-coder, deepseek-llm, deepseek-r1-qwen, deepseek-v3, default, exaone, exaone-moe, exaone4, f2llmv2, falcon, falcon-h1, falcon3, gigachat, gpt-2, gpt-4o, gpt3-finnish, granite-docling, granite-embed-multi-97m, grok-2, hunyuan, hunyuan-dense, hy_v4, jais, jais-2, jina-v5-nano, joyai-llm, kanana2, kormo, laguna, lfm2, llada-moe, llama-bpe, llama-v3, llama3, llama4, megrez, mellum, mellum2, midm-2.0, minerva-7b, minicpm5, minimax-m2, mpt, olmo, phi-2, pixtral, poro-chat, qwen2, qwen35, refact, seed-coder, smaug-bpe, smollm, solar-open, spark2_5, stablelm2, starcoder, talkie, tekken, trillion, ufakzeka, viking, youtu";

/// llama.cpp's regexes for the GGUF pre-tokenizer `pre`, and whether its BPE takes a piece that is a whole
/// vocabulary entry as that entry without merging (llama.cpp's `ignore_merges`; `tokenizers`' BPE option of the
/// same name); `None` when runner does not know the name.
fn llama_cpp(pre: &str) -> Option<(&'static [&'static str], bool)> {
    Some(match pre {
        "default" => (DEFAULT, false),
        "minicpm5" => (MINICPM5, true),
        "dbrx" | "smaug-bpe" => (LLAMA3, false),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0" | "lfm2"
        | "jina-v5-nano" => (LLAMA3, true),
        "deepseek-llm" => (DEEPSEEK_LLM, false),
        "deepseek-coder" => (DEEPSEEK_CODER, false),
        "deepseek-v3" | "hunyuan-dense" | "hy_v4" | "joyai-llm" => (DEEPSEEK_V3, false),
        "spark2_5" => (SPARK2_5, false),
        "youtu" => (YOUTU, true),
        "falcon" => (FALCON, false),
        "mpt" | "gpt-2" | "phi-2" | "gigachat" | "a.x-4.0" | "mellum" | "olmo" | "jais" | "exaone4" | "trillion"
        | "granite-docling" => (GPT2, false),
        "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone" | "minerva-7b" | "mellum2" => {
            (STARCODER, false)
        }
        "jais-2" => (JAIS2, false),
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "stablelm2" | "megrez" | "hunyuan" | "grok-2"
        | "solar-open" => (QWEN2, false),
        "qwen35" => (QWEN35, false),
        "poro-chat" | "bloom" | "gpt3-finnish" => (BLOOM, false),
        "viking" => (VIKING, false),
        "tekken" => (TEKKEN, true),
        "exaone-moe" => (EXAONE_MOE, false),
        "gpt-4o" | "llama4" | "kanana2" | "talkie" | "minimax-m2" => (GPT4O, false),
        "granite-embed-multi-97m" => (GRANITE_EMB_MULTI, true),
        "bailingmoe" | "bailingmoe2" | "llada-moe" => (BAILINGMOE, false),
        "seed-coder" => (SEED_CODER, false),
        "ufakzeka" => (UFAKZEKA, false),
        "laguna" => (LAGUNA, false),
        _ => return None,
    })
}

/// Whether llama.cpp adds a BOS token for the pre-tokenizer `pre` when the GGUF does not say
/// (`tokenizer.ggml.add_bos_token`): the Llama 3 names and tekken.
pub fn adds_bos(pre: &str) -> bool {
    matches!(llama_cpp(pre), Some((regexes, true)) if regexes == LLAMA3 || regexes == TEKKEN)
}

/// The `pre_tokenizer` of `tokenizer.json` for the GGUF pre-tokenizer `pre` and the BPE model's `ignore_merges`, or
/// `None` when runner does not know the name.
pub fn for_gguf_name(pre: &str) -> Option<(Value, bool)> {
    let (regexes, ignore_merges) = llama_cpp(pre)?;
    let mut steps: Vec<Value> = regexes
        .iter()
        .map(|regex| {
            let regex = as_llama_cpp_matches(regex);
            json!({"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false})
        })
        .collect();
    steps.push(json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}));
    Some((json!({"type": "Sequence", "pretokenizers": steps}), ignore_merges))
}

/// `regex` as llama.cpp's engine matches it: it collapses text to one symbol per Unicode category and reads the
/// letter subcategories `\p{Lu}`, `\p{Ll}`, `\p{Lt}`, `\p{Lm}`, `\p{Lo}` as any letter (src/unicode.cpp), so the
/// regexes it did not adapt (youtu's) split "iPhone" where `tokenizers` would not.
fn as_llama_cpp_matches(regex: &str) -> String {
    ["\\p{Lu}", "\\p{Ll}", "\\p{Lt}", "\\p{Lm}", "\\p{Lo}"]
        .iter()
        .fold(regex.to_string(), |r, sub| r.replace(sub, "\\p{L}"))
}
