//! Reads GGUF files (the llama.cpp model format): metadata, tensor directory and tensor bytes.
//!
//! The file is memory-mapped and every offset is checked against its length when it is opened, so a
//! truncated or corrupt file is refused up front with an error that names the key or tensor, instead of
//! failing halfway through an import. `writer` produces GGUF files, for tests and fixtures.

mod types;
pub mod writer;

pub use types::GgmlType;

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;

/// Why a GGUF file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("cannot open {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a GGUF file (it does not start with \"GGUF\")")]
    NotGguf { path: PathBuf },
    #[error("{path}: GGUF version {version} is not supported (versions 2 and 3 are)")]
    Version { path: PathBuf, version: u32 },
    #[error("{path} is truncated or corrupt: {what} runs past the end of the file ({len} bytes)")]
    Truncated { path: PathBuf, what: String, len: u64 },
    #[error("{path} is corrupt: {what}")]
    Corrupt { path: PathBuf, what: String },
    #[error("{path}: metadata key `{key}` is missing")]
    MissingKey { path: PathBuf, key: String },
    #[error("{path}: metadata key `{key}` is {found}, expected {expected}")]
    KeyType { path: PathBuf, key: String, found: &'static str, expected: &'static str },
    #[error("{path}: tensor `{name}` is missing")]
    MissingTensor { path: PathBuf, name: String },
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Vec<MetaValue>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl MetaValue {
    pub fn type_name(&self) -> &'static str {
        match self {
            MetaValue::U8(_) => "u8",
            MetaValue::I8(_) => "i8",
            MetaValue::U16(_) => "u16",
            MetaValue::I16(_) => "i16",
            MetaValue::U32(_) => "u32",
            MetaValue::I32(_) => "i32",
            MetaValue::F32(_) => "f32",
            MetaValue::Bool(_) => "bool",
            MetaValue::String(_) => "string",
            MetaValue::Array(_) => "array",
            MetaValue::U64(_) => "u64",
            MetaValue::I64(_) => "i64",
            MetaValue::F64(_) => "f64",
        }
    }

    /// The value as an unsigned integer, whatever integer width the writer chose.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U8(v) => Some(v.into()),
            MetaValue::U16(v) => Some(v.into()),
            MetaValue::U32(v) => Some(v.into()),
            MetaValue::U64(v) => Some(v),
            MetaValue::I8(v) => u64::try_from(v).ok(),
            MetaValue::I16(v) => u64::try_from(v).ok(),
            MetaValue::I32(v) => u64::try_from(v).ok(),
            MetaValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => Some(v.into()),
            MetaValue::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }
}

/// Where a tensor lies and how it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// GGML order: `dims[0]` is the innermost (contiguous) dimension.
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Offset from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// Saturates at `u64::MAX`: `GgufFile::open` refuses a shape whose product overflows.
    pub fn element_count(&self) -> u64 {
        self.checked_element_count().unwrap_or(u64::MAX)
    }

    fn checked_element_count(&self) -> Option<u64> {
        self.dims.iter().try_fold(1u64, |count, &dim| count.checked_mul(dim))
    }

    /// Bytes the tensor occupies, or `None` when its innermost dimension is not a whole number of blocks.
    pub fn byte_len(&self) -> Option<u64> {
        let block = self.ggml_type.block_size()?;
        let inner = *self.dims.first().unwrap_or(&1);
        if !inner.is_multiple_of(block.elements) {
            return None;
        }
        (self.checked_element_count()? / block.elements).checked_mul(block.bytes)
    }
}

impl fmt::Display for TensorInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} {:?})", self.name, self.ggml_type, self.dims)
    }
}

/// An opened GGUF file.
pub struct GgufFile {
    path: PathBuf,
    map: Mmap,
    version: u32,
    metadata: BTreeMap<String, MetaValue>,
    tensors: Vec<TensorInfo>,
    data_start: u64,
}

impl GgufFile {
    pub fn open(path: impl AsRef<Path>) -> Result<Self, GgufError> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|source| GgufError::Open { path: path.clone(), source })?;
        // SAFETY: the map is read-only; a model file changed by another process while we read it is
        // the same hazard as for any reader, and offsets are all bounds-checked.
        let map = unsafe { Mmap::map(&file) }.map_err(|source| GgufError::Open { path: path.clone(), source })?;
        Self::parse(path, map)
    }

    fn parse(path: PathBuf, map: Mmap) -> Result<Self, GgufError> {
        let mut cur = Cursor { bytes: &map, pos: 0, path: &path };
        if map.len() < 4 || &map[..4] != MAGIC {
            return Err(GgufError::NotGguf { path });
        }
        cur.pos = 4;
        let version = cur.u32("the version")?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::Version { path, version });
        }
        let tensor_count = cur.u64("the tensor count")?;
        let kv_count = cur.u64("the metadata count")?;
        let mut metadata = BTreeMap::new();
        for i in 0..kv_count {
            let key = cur.string(&format!("metadata key #{i}"))?;
            let ty = cur.u32(&format!("the type of metadata key `{key}`"))?;
            let value = cur.value(ty, &key, 0)?;
            metadata.insert(key, value);
        }
        let mut tensors = Vec::new();
        for i in 0..tensor_count {
            let name = cur.string(&format!("the name of tensor #{i}"))?;
            let n_dims = cur.u32(&format!("the rank of tensor `{name}`"))?;
            if n_dims > 8 {
                return Err(cur.corrupt(format!("tensor `{name}` claims {n_dims} dimensions")));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(cur.u64(&format!("the shape of tensor `{name}`"))?);
            }
            let ggml_type = GgmlType::from_id(cur.u32(&format!("the type of tensor `{name}`"))?);
            let offset = cur.u64(&format!("the offset of tensor `{name}`"))?;
            tensors.push(TensorInfo { name, dims, ggml_type, offset });
        }
        let alignment = match metadata.get("general.alignment") {
            Some(v) => v.as_u64().filter(|a| *a > 0 && a.is_power_of_two()).ok_or_else(|| GgufError::Corrupt {
                path: path.clone(),
                what: format!("general.alignment is {v:?}, expected a power of two"),
            })?,
            None => DEFAULT_ALIGNMENT,
        };
        let data_start = (cur.pos as u64).div_ceil(alignment) * alignment;
        let file_len = map.len() as u64;
        for t in &tensors {
            if t.checked_element_count().is_none() {
                return Err(GgufError::Corrupt {
                    path: path.clone(),
                    what: format!(
                        "tensor `{}` has shape {:?}, more elements than a 64-bit count holds",
                        t.name, t.dims
                    ),
                });
            }
            // Unknown types cannot be sized; they are rejected by whoever wants their bytes.
            let Some(len) = t.byte_len() else {
                if t.ggml_type.block_size().is_some() {
                    return Err(GgufError::Corrupt {
                        path: path.clone(),
                        what: format!(
                            "tensor `{}` has shape {:?}, not a whole number of {} blocks",
                            t.name, t.dims, t.ggml_type
                        ),
                    });
                }
                continue;
            };
            let end = data_start.checked_add(t.offset).and_then(|s| s.checked_add(len));
            if end.is_none_or(|end| end > file_len) {
                return Err(GgufError::Truncated {
                    path: path.clone(),
                    what: format!(
                        "the data of tensor `{}` ({} bytes at offset {})",
                        t.name,
                        len,
                        data_start.saturating_add(t.offset)
                    ),
                    len: file_len,
                });
            }
        }
        Ok(Self { path, map, version, metadata, tensors, data_start })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn metadata(&self) -> &BTreeMap<String, MetaValue> {
        &self.metadata
    }

    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.get(key)
    }

    fn require(&self, key: &str) -> Result<&MetaValue, GgufError> {
        self.metadata.get(key).ok_or_else(|| GgufError::MissingKey { path: self.path.clone(), key: key.into() })
    }

    fn key_type(&self, key: &str, found: &MetaValue, expected: &'static str) -> GgufError {
        GgufError::KeyType { path: self.path.clone(), key: key.into(), found: found.type_name(), expected }
    }

    pub fn u64(&self, key: &str) -> Result<u64, GgufError> {
        let v = self.require(key)?;
        v.as_u64().ok_or_else(|| self.key_type(key, v, "an unsigned integer"))
    }

    pub fn f64(&self, key: &str) -> Result<f64, GgufError> {
        let v = self.require(key)?;
        v.as_f64().ok_or_else(|| self.key_type(key, v, "a number"))
    }

    pub fn str(&self, key: &str) -> Result<&str, GgufError> {
        let v = self.require(key)?;
        v.as_str().ok_or_else(|| self.key_type(key, v, "a string"))
    }

    pub fn array(&self, key: &str) -> Result<&[MetaValue], GgufError> {
        match self.require(key)? {
            MetaValue::Array(items) => Ok(items),
            v => Err(self.key_type(key, v, "an array")),
        }
    }

    /// A string array such as `tokenizer.ggml.tokens`.
    pub fn str_array(&self, key: &str) -> Result<Vec<&str>, GgufError> {
        self.array(key)?
            .iter()
            .map(|v| v.as_str().ok_or_else(|| self.key_type(key, v, "an array of strings")))
            .collect()
    }

    pub fn tensor(&self, name: &str) -> Result<&TensorInfo, GgufError> {
        self.tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| GgufError::MissingTensor { path: self.path.clone(), name: name.into() })
    }

    /// The raw bytes of a tensor, in its GGML storage layout.
    pub fn tensor_bytes(&self, tensor: &TensorInfo) -> Result<&[u8], GgufError> {
        let len = tensor.byte_len().ok_or_else(|| GgufError::Corrupt {
            path: self.path.clone(),
            what: format!("tensor `{}` has type {}, whose size runner does not know", tensor.name, tensor.ggml_type),
        })?;
        let start = (self.data_start + tensor.offset) as usize;
        // Bounds were checked in `parse`.
        Ok(&self.map[start..start + len as usize])
    }
}

impl fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("keys", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl Cursor<'_> {
    fn take(&mut self, n: u64, what: &str) -> Result<&[u8], GgufError> {
        let end = (self.pos as u64).checked_add(n).filter(|end| *end <= self.bytes.len() as u64);
        let Some(end) = end else {
            return Err(GgufError::Truncated {
                path: self.path.to_path_buf(),
                what: what.to_string(),
                len: self.bytes.len() as u64,
            });
        };
        let slice = &self.bytes[self.pos..end as usize];
        self.pos = end as usize;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        Ok(self.take(N as u64, what)?.try_into().expect("take returns N bytes"))
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn corrupt(&self, what: String) -> GgufError {
        GgufError::Corrupt { path: self.path.to_path_buf(), what }
    }

    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let len = self.u64(what)?;
        let bytes = self.take(len, what)?;
        // Vocabularies of real models contain strings that are not valid UTF-8 on their own (partial
        // byte sequences); keep them readable rather than refusing the file.
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    fn value(&mut self, ty: u32, key: &str, depth: u32) -> Result<MetaValue, GgufError> {
        let what = format!("the value of metadata key `{key}`");
        Ok(match ty {
            0 => MetaValue::U8(self.array::<1>(&what)?[0]),
            1 => MetaValue::I8(self.array::<1>(&what)?[0] as i8),
            2 => MetaValue::U16(u16::from_le_bytes(self.array(&what)?)),
            3 => MetaValue::I16(i16::from_le_bytes(self.array(&what)?)),
            4 => MetaValue::U32(u32::from_le_bytes(self.array(&what)?)),
            5 => MetaValue::I32(i32::from_le_bytes(self.array(&what)?)),
            6 => MetaValue::F32(f32::from_le_bytes(self.array(&what)?)),
            7 => MetaValue::Bool(self.array::<1>(&what)?[0] != 0),
            8 => MetaValue::String(self.string(&what)?),
            9 => {
                if depth > 0 {
                    return Err(self.corrupt(format!("metadata key `{key}` nests arrays")));
                }
                let item_ty = self.u32(&what)?;
                let count = self.u64(&what)?;
                // Every item takes at least one byte: a count larger than what is left is corrupt, and
                // must not be trusted for an allocation.
                if count > (self.bytes.len() - self.pos) as u64 {
                    return Err(GgufError::Truncated {
                        path: self.path.to_path_buf(),
                        what: format!("{what} ({count} items)"),
                        len: self.bytes.len() as u64,
                    });
                }
                let mut items = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    items.push(self.value(item_ty, key, depth + 1)?);
                }
                MetaValue::Array(items)
            }
            10 => MetaValue::U64(u64::from_le_bytes(self.array(&what)?)),
            11 => MetaValue::I64(i64::from_le_bytes(self.array(&what)?)),
            12 => MetaValue::F64(f64::from_le_bytes(self.array(&what)?)),
            other => return Err(self.corrupt(format!("metadata key `{key}` has unknown value type {other}"))),
        })
    }
}

#[cfg(test)]
mod tests;
