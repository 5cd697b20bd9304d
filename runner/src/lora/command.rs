//! `runner adapter`: make a random adapter for a LoRA-capable model (to measure what adapters cost), describe
//! an adapter file, and convert a PEFT adapter.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use super::{AdapterFile, AdapterInfo, LoraSlots, RandomAdapter, check_against, parse_targets, peft, random_adapter};

#[derive(Debug, Args)]
pub struct AdapterArgs {
    #[command(subcommand)]
    pub command: AdapterCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdapterCommand {
    /// Write a random LoRA adapter for a LoRA-capable model (made with `runner import --lora-targets`).
    Init(InitArgs),
    /// Show an adapter's tensors, rank, parameter count (and share of the model's), hash and size on disk.
    Info(InfoArgs),
    /// Convert a PEFT adapter (adapter_model.safetensors + adapter_config.json) into an .onnx_adapter file.
    Convert(ConvertArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The LoRA-capable model folder the adapter is for.
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// LoRA rank r (at most the model's --lora-max-rank).
    #[arg(long, value_name = "R", default_value_t = 8)]
    pub rank: usize,
    /// Projections to adapt, comma-separated (q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj) or
    /// `all` (default: every projection the model has LoRA inputs for).
    #[arg(long, value_name = "LIST")]
    pub targets: Option<String>,
    /// Seed of the random weights: the same seed writes the same file.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// PEFT's lora_alpha / r, folded into the B matrices.
    #[arg(long, value_name = "A", default_value_t = 1.0)]
    pub scale: f32,
    /// The .onnx_adapter file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The .onnx_adapter file.
    pub file: PathBuf,
    /// A model folder: check the adapter fits it and show its share of the model's parameters.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// A PEFT adapter folder, or its adapter_model.safetensors (adapter_config.json beside it).
    pub peft: PathBuf,
    /// The LoRA-capable model folder the adapter must fit.
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// The .onnx_adapter file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

pub fn run(args: AdapterArgs) -> Result<()> {
    match args.command {
        AdapterCommand::Init(args) => init(args),
        AdapterCommand::Info(args) => info(args),
        AdapterCommand::Convert(args) => convert(args),
    }
}

fn model_slots(model: &Path) -> Result<LoraSlots> {
    let slots = LoraSlots::read(model).with_context(|| format!("--model {}", model.display()))?;
    if slots.is_empty() {
        bail!(
            "--model {} has no LoRA inputs: import it with `runner import ... --lora-targets q_proj,v_proj,...`",
            model.display()
        );
    }
    Ok(slots)
}

fn write_and_describe(file: &AdapterFile, out: &Path, slots: &LoraSlots) -> Result<()> {
    check_against(file, slots, out)?;
    file.write(out)?;
    let bytes = std::fs::read(out).with_context(|| format!("cannot read back {}", out.display()))?;
    println!("{}", AdapterInfo::describe(out, &bytes, file, slots.base_parameters));
    Ok(())
}

fn init(args: InitArgs) -> Result<()> {
    if !(args.scale.is_finite()) {
        bail!("--scale must be a finite number, got {}", args.scale);
    }
    let targets = match &args.targets {
        Some(list) => parse_targets(list).map_err(|e| anyhow::anyhow!("--targets: {e}"))?,
        None => Vec::new(),
    };
    let slots = model_slots(&args.model)?;
    let file = random_adapter(&slots, &RandomAdapter { rank: args.rank, targets, seed: args.seed, scale: args.scale })?;
    write_and_describe(&file, &args.out, &slots)
}

fn info(args: InfoArgs) -> Result<()> {
    let bytes = std::fs::read(&args.file).with_context(|| format!("cannot read adapter {}", args.file.display()))?;
    let file = AdapterFile::from_bytes(&bytes, &args.file)?;
    file.check_tensors().with_context(|| format!("adapter {}", args.file.display()))?;
    let base = match &args.model {
        Some(model) => {
            let slots = model_slots(model)?;
            check_against(&file, &slots, &args.file)?;
            slots.base_parameters
        }
        None => None,
    };
    let info = AdapterInfo::describe(&args.file, &bytes, &file, base);
    if args.json {
        let tensors: Vec<serde_json::Value> = file
            .tensors
            .iter()
            .map(|t| serde_json::json!({"name": t.name, "dims": t.dims, "data_type": t.data_type}))
            .collect();
        let mut value = serde_json::to_value(&info)?;
        value["tensor_list"] = tensors.into();
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("{info}");
        for t in &file.tensors {
            println!("  {:<64} {:?}", t.name, t.dims);
        }
    }
    Ok(())
}

fn convert(args: ConvertArgs) -> Result<()> {
    if !args.peft.exists() {
        anyhow::bail!("{}: no such PEFT adapter folder or adapter_model.safetensors file", args.peft.display());
    }
    let (weights, config) = peft::peft_files(&args.peft);
    let config = peft::PeftConfig::read(&config)?;
    let tensors = peft::read_safetensors(&weights)?;
    let file = peft::convert(&tensors, config.scale(), &weights)?;
    let slots = model_slots(&args.model)?;
    write_and_describe(&file, &args.out, &slots)
}
