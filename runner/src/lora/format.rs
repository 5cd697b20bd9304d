//! ONNX Runtime's LoRA adapter file (`.onnx_adapter`), written and read by hand: a FlatBuffers buffer with
//! the file identifier `TORT` whose root table `Adapter { format_version, adapter_version, model_version,
//! parameters: [Parameter] }` holds `Parameter { name, dims: [int64], data_type, raw_data: [uint8] }`
//! (onnxruntime/lora/adapter_format/adapter_schema.fbs, format version 1).
//!
//! The writer lays the buffer out front to back (root table, parameter vector, then each parameter's table,
//! name, dims and data), so every offset points forward as FlatBuffers requires; raw data starts on a 64-byte
//! boundary because ONNX Runtime uses it in place as tensor memory. The reader checks every offset and length
//! against the buffer before it touches the bytes, so a truncated or corrupt file is an error naming the file
//! and the parameter, never a panic.

use std::path::{Path, PathBuf};

/// The only version ONNX Runtime 1.31 accepts.
pub const FORMAT_VERSION: i32 = 1;
const IDENTIFIER: &[u8; 4] = b"TORT";
/// ONNX's `TensorProto.DataType` numbering, which the schema's `TensorDataType` follows.
pub const FLOAT: i32 = 1;
pub const FLOAT16: i32 = 10;
const DATA_ALIGNMENT: usize = 64;

/// One named tensor of an adapter, as stored: ONNX element type and little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterTensor {
    pub name: String,
    pub dims: Vec<i64>,
    pub data_type: i32,
    pub raw_data: Vec<u8>,
}

impl AdapterTensor {
    pub fn from_f32(name: impl Into<String>, dims: &[i64], values: &[f32]) -> Self {
        AdapterTensor {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: FLOAT,
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    pub fn elements(&self) -> u64 {
        self.dims.iter().map(|&d| d.max(0) as u64).product()
    }

    /// The values as float32 (float16 is widened); `None` for other element types.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        match self.data_type {
            FLOAT => {
                Some(self.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
            }
            FLOAT16 => {
                Some(self.raw_data.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect())
            }
            _ => None,
        }
    }
}

/// The contents of an `.onnx_adapter` file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AdapterFile {
    pub adapter_version: i32,
    pub model_version: i32,
    pub tensors: Vec<AdapterTensor>,
}

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("cannot read adapter {path}: {source}", path = .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write adapter {path}: {source}", path = .path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path} is not an ONNX Runtime adapter file: {reason}", path = .path.display())]
    NotAdapter { path: PathBuf, reason: String },
    #[error("adapter {path} is truncated or corrupt: {what}", path = .path.display())]
    Corrupt { path: PathBuf, what: String },
    #[error("adapter {path} has format version {found}; ONNX Runtime reads version {FORMAT_VERSION}", path = .path.display())]
    Version { path: PathBuf, found: i32 },
    #[error("adapter tensor `{name}`: {problem}")]
    Tensor { name: String, problem: String },
}

/// Appends FlatBuffers scalars and patches forward offsets once their targets are placed.
struct Buffer(Vec<u8>);

impl Buffer {
    fn pad_to(&mut self, alignment: usize) {
        while !self.0.len().is_multiple_of(alignment) {
            self.0.push(0);
        }
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// A 4-byte slot that will hold an offset; patched by [`Buffer::point`].
    fn slot(&mut self) -> usize {
        let at = self.0.len();
        self.u32(0);
        at
    }
    /// Makes the offset slot at `slot` point to the current end of the buffer.
    fn point(&mut self, slot: usize) {
        let offset = (self.0.len() - slot) as u32;
        self.0[slot..slot + 4].copy_from_slice(&offset.to_le_bytes());
    }
    /// A vtable for a table of `fields` 4-byte fields laid out in order, then the table's soffset.
    /// Returns the table's position.
    fn table_header(&mut self, fields: u16) -> usize {
        self.pad_to(4);
        let vtable = self.0.len();
        self.u16(4 + 2 * fields);
        self.u16(4 + 4 * fields);
        for i in 0..fields {
            self.u16(4 + 4 * i);
        }
        self.pad_to(4);
        let table = self.0.len();
        self.i32((table - vtable) as i32);
        table
    }
    /// Starts a vector of `len` elements whose first element is aligned to `alignment`.
    fn vector_start(&mut self, len: usize, alignment: usize) {
        while !(self.0.len() + 4).is_multiple_of(alignment) {
            self.0.push(0);
        }
        self.u32(len as u32);
    }
}

impl AdapterFile {
    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Buffer(Vec::new());
        let root = b.slot();
        b.0.extend_from_slice(IDENTIFIER);
        let root_table = b.table_header(4);
        b.i32(FORMAT_VERSION);
        b.i32(self.adapter_version);
        b.i32(self.model_version);
        let parameters = b.slot();
        b.0[root..root + 4].copy_from_slice(&(root_table as u32).to_le_bytes());

        b.point(parameters);
        b.vector_start(self.tensors.len(), 4);
        let entries: Vec<usize> = self.tensors.iter().map(|_| b.slot()).collect();
        for (tensor, entry) in self.tensors.iter().zip(entries) {
            let table = b.table_header(4);
            b.0[entry..entry + 4].copy_from_slice(&((table - entry) as u32).to_le_bytes());
            let (name, dims) = (b.slot(), b.slot());
            b.i32(tensor.data_type);
            let data = b.slot();

            b.point(name);
            b.u32(tensor.name.len() as u32);
            b.0.extend_from_slice(tensor.name.as_bytes());
            b.0.push(0);
            b.vector_start(tensor.dims.len(), 8);
            // The slot is patched to the vector's length field, which vector_start may have moved by padding.
            let dims_at = b.0.len() - 4;
            b.0[dims..dims + 4].copy_from_slice(&((dims_at - dims) as u32).to_le_bytes());
            for d in &tensor.dims {
                b.0.extend_from_slice(&d.to_le_bytes());
            }
            b.vector_start(tensor.raw_data.len(), DATA_ALIGNMENT);
            let data_at = b.0.len() - 4;
            b.0[data..data + 4].copy_from_slice(&((data_at - data) as u32).to_le_bytes());
            b.0.extend_from_slice(&tensor.raw_data);
        }
        b.pad_to(8);
        b.0
    }

    pub fn write(&self, path: &Path) -> Result<(), FormatError> {
        std::fs::write(path, self.to_bytes()).map_err(|source| FormatError::Write { path: path.to_path_buf(), source })
    }

    pub fn read(path: &Path) -> Result<AdapterFile, FormatError> {
        let bytes = std::fs::read(path).map_err(|source| FormatError::Read { path: path.to_path_buf(), source })?;
        Self::from_bytes(&bytes, path)
    }

    /// Parses `bytes`; `path` names the file in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<AdapterFile, FormatError> {
        if bytes.len() < 8 || &bytes[4..8] != IDENTIFIER {
            let reason = if bytes.len() < 8 {
                format!("it is {} bytes long", bytes.len())
            } else {
                format!("its identifier is {:?}, not \"TORT\"", String::from_utf8_lossy(&bytes[4..8]))
            };
            return Err(FormatError::NotAdapter { path: path.to_path_buf(), reason });
        }
        let r = Reader { bytes, path };
        let root = r.u32(0, "the root offset")? as usize;
        let adapter = r.table(root, "the adapter table")?;
        let format_version = r.field_i32(&adapter, 0, "format_version")?;
        if format_version != FORMAT_VERSION {
            return Err(FormatError::Version { path: path.to_path_buf(), found: format_version });
        }
        let mut file = AdapterFile {
            adapter_version: r.field_i32(&adapter, 1, "adapter_version")?,
            model_version: r.field_i32(&adapter, 2, "model_version")?,
            tensors: Vec::new(),
        };
        let Some((params, count)) = r.field_vector(&adapter, 3, 4, "the parameter list")? else {
            return Ok(file);
        };
        for i in 0..count {
            let what = |field: &str| format!("parameter {i}'s {field}");
            let entry = params + 4 * i;
            let table_at = entry + r.u32(entry, &what("offset"))? as usize;
            let table = r.table(table_at, &what("table"))?;
            let name = match r.field_vector(&table, 0, 1, &what("name"))? {
                Some((at, len)) => String::from_utf8(r.slice(at, len, &what("name"))?.to_vec())
                    .map_err(|_| r.corrupt(what("name is not UTF-8")))?,
                None => String::new(),
            };
            let what = |field: &str| format!("parameter {i} (`{name}`)'s {field}");
            let dims = match r.field_vector(&table, 1, 8, &what("dims"))? {
                Some((at, len)) => r
                    .slice(at, len * 8, &what("dims"))?
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect(),
                None => Vec::new(),
            };
            let data_type = r.field_i32(&table, 2, &what("data_type"))?;
            let raw_data = match r.field_vector(&table, 3, 1, &what("raw_data"))? {
                Some((at, len)) => r.slice(at, len, &what("raw_data"))?.to_vec(),
                None => Vec::new(),
            };
            file.tensors.push(AdapterTensor { name, dims, data_type, raw_data });
        }
        Ok(file)
    }

    /// Checks each tensor is self-consistent: a name, non-negative dims, and as many bytes as they say.
    pub fn check_tensors(&self) -> Result<(), FormatError> {
        for t in &self.tensors {
            let problem = |problem: String| FormatError::Tensor { name: t.name.clone(), problem };
            if t.name.is_empty() {
                return Err(problem("a tensor has no name".into()));
            }
            if t.dims.iter().any(|&d| d < 0) {
                return Err(problem(format!("negative dimension in {:?}", t.dims)));
            }
            let element_bytes = match t.data_type {
                FLOAT => 4,
                FLOAT16 => 2,
                other => return Err(problem(format!("element type {other} is not float32 (1) or float16 (10)"))),
            };
            let expected = t.elements() * element_bytes;
            if t.raw_data.len() as u64 != expected {
                return Err(problem(format!(
                    "shape {:?} needs {expected} bytes of data, the file holds {}",
                    t.dims,
                    t.raw_data.len()
                )));
            }
        }
        Ok(())
    }
}

/// A table's position and its vtable's field offsets.
struct Table {
    at: usize,
    fields: Vec<u16>,
}

/// Bounds-checked FlatBuffers reads.
struct Reader<'a> {
    bytes: &'a [u8],
    path: &'a Path,
}

impl Reader<'_> {
    fn corrupt(&self, what: String) -> FormatError {
        FormatError::Corrupt { path: self.path.to_path_buf(), what }
    }

    fn slice(&self, at: usize, len: usize, what: &str) -> Result<&[u8], FormatError> {
        at.checked_add(len).and_then(|end| self.bytes.get(at..end)).ok_or_else(|| {
            self.corrupt(format!(
                "{what} ({len} bytes at offset {at}) runs past the end of the file ({} bytes)",
                self.bytes.len()
            ))
        })
    }

    fn u32(&self, at: usize, what: &str) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.slice(at, 4, what)?.try_into().expect("4 bytes")))
    }

    fn u16(&self, at: usize, what: &str) -> Result<u16, FormatError> {
        Ok(u16::from_le_bytes(self.slice(at, 2, what)?.try_into().expect("2 bytes")))
    }

    fn table(&self, at: usize, what: &str) -> Result<Table, FormatError> {
        let soffset = self.u32(at, what)? as i32 as i64;
        let vtable =
            usize::try_from(at as i64 - soffset).map_err(|_| self.corrupt(format!("{what}'s vtable offset")))?;
        let vtable_len = self.u16(vtable, what)? as usize;
        if vtable_len < 4 || !vtable_len.is_multiple_of(2) {
            return Err(self.corrupt(format!("{what}'s vtable has length {vtable_len}")));
        }
        let fields =
            (0..(vtable_len - 4) / 2).map(|i| self.u16(vtable + 4 + 2 * i, what)).collect::<Result<Vec<_>, _>>()?;
        Ok(Table { at, fields })
    }

    /// The position of field `index`, or `None` when the field is absent.
    fn field(&self, table: &Table, index: usize) -> Option<usize> {
        table.fields.get(index).copied().filter(|&o| o != 0).map(|o| table.at + o as usize)
    }

    fn field_i32(&self, table: &Table, index: usize, what: &str) -> Result<i32, FormatError> {
        match self.field(table, index) {
            Some(at) => Ok(self.u32(at, what)? as i32),
            None => Ok(0),
        }
    }

    /// A vector field: the position of its first element and its length.
    fn field_vector(
        &self,
        table: &Table,
        index: usize,
        element_bytes: usize,
        what: &str,
    ) -> Result<Option<(usize, usize)>, FormatError> {
        let Some(at) = self.field(table, index) else { return Ok(None) };
        let start = at + self.u32(at, what)? as usize;
        let len = self.u32(start, what)? as usize;
        self.slice(start + 4, len.saturating_mul(element_bytes), what)?;
        Ok(Some((start + 4, len)))
    }
}
