//! LongBench's tasks as its reference code (THUDM/LongBench `pred.py`, `config/dataset2prompt.json`,
//! `config/dataset2maxlen.json`, `eval.py`) defines them: the prompt template, the generation budget, whether
//! the prompt goes through the chat template, and the metric. Templates keep LongBench's exact wording and
//! spacing, so prompts match the published setup byte for byte before truncation.

/// How a task's output is scored (LongBench's `dataset2metric`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// SQuAD-style bag-of-words F1 (`qa_f1_score`).
    QaF1,
    /// F1 over Chinese tokens (`qa_f1_zh_score`; see `metrics` for the tokenisation used here).
    QaF1Zh,
    /// ROUGE-L F-measure (`rouge_score`).
    RougeL,
    /// ROUGE-L over Chinese tokens (`rouge_zh_score`).
    RougeLZh,
    /// The share of the classes named in the output that are the right one (`classification_score`).
    Classification,
    /// The share of the numbers in the output that are the gold paragraph's (`retrieval_score`).
    Retrieval,
    /// As `Retrieval`, gold given as "段落N" (`retrieval_zh_score`).
    RetrievalZh,
    /// The share of the numbers in the output that are the gold count (`count_score`).
    Count,
    /// Edit similarity of the first code line of the output (`code_sim_score`).
    CodeSimilarity,
}

/// One LongBench task.
#[derive(Debug, Clone, Copy)]
pub struct Task {
    pub name: &'static str,
    pub description: &'static str,
    /// `{context}` and `{input}` are replaced by the sample's fields.
    pub template: &'static str,
    /// LongBench's `dataset2maxlen`: tokens generated at most.
    pub max_new_tokens: u32,
    pub metric: MetricKind,
    /// LongBench gives the few-shot and code tasks to the model as plain text, the others through the chat
    /// template (`pred.py`: `if dataset not in ["trec", "triviaqa", "samsum", "lsht", "lcc", "repobench-p"]`).
    pub chat: bool,
    /// `eval.py` scores only the first line of these tasks' outputs (the few-shot tasks would go on with the
    /// next example).
    pub first_line_only: bool,
}

const QA: &str = "Answer the question based on the given passages. Only give me the answer and do not output any other words.\n\nThe following are given passages.\n{context}\n\nAnswer the question based on the given passages. Only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:";

const fn task(
    name: &'static str,
    description: &'static str,
    template: &'static str,
    max_new_tokens: u32,
    metric: MetricKind,
) -> Task {
    let few_shot_or_code =
        matches!(name.as_bytes(), b"trec" | b"triviaqa" | b"samsum" | b"lsht" | b"lcc" | b"repobench-p");
    let first_line_only = matches!(name.as_bytes(), b"trec" | b"triviaqa" | b"samsum" | b"lsht");
    Task { name, description, template, max_new_tokens, metric, chat: !few_shot_or_code, first_line_only }
}

/// Every LongBench (v1) task, in the order of its paper's table.
pub const TASKS: &[Task] = &[
    task(
        "narrativeqa",
        "single-document QA over a novel or movie script (F1)",
        "You are given a story, which can be either a novel or a movie script, and a question. Answer the question as concisely as you can, using a single phrase if possible. Do not provide any explanation.\n\nStory: {context}\n\nNow, answer the question based on the story as concisely as you can, using a single phrase if possible. Do not provide any explanation.\n\nQuestion: {input}\n\nAnswer:",
        128,
        MetricKind::QaF1,
    ),
    task(
        "qasper",
        "single-document QA over a scientific article (F1)",
        "You are given a scientific article and a question. Answer the question as concisely as you can, using a single phrase or sentence if possible. If the question cannot be answered based on the information in the article, write \"unanswerable\". If the question is a yes/no question, answer \"yes\", \"no\", or \"unanswerable\". Do not provide any explanation.\n\nArticle: {context}\n\n Answer the question based on the above article as concisely as you can, using a single phrase or sentence if possible. If the question cannot be answered based on the information in the article, write \"unanswerable\". If the question is a yes/no question, answer \"yes\", \"no\", or \"unanswerable\". Do not provide any explanation.\n\nQuestion: {input}\n\nAnswer:",
        128,
        MetricKind::QaF1,
    ),
    task(
        "multifieldqa_en",
        "single-document QA over texts from many fields, English (F1)",
        "Read the following text and answer briefly.\n\n{context}\n\nNow, answer the following question based on the above text, only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:",
        64,
        MetricKind::QaF1,
    ),
    task(
        "multifieldqa_zh",
        "single-document QA over texts from many fields, Chinese (F1)",
        "阅读以下文字并用中文简短回答：\n\n{context}\n\n现在请基于上面的文章回答下面的问题，只告诉我答案，不要输出任何其他字词。\n\n问题：{input}\n回答：",
        64,
        MetricKind::QaF1Zh,
    ),
    task("hotpotqa", "multi-document QA, HotpotQA (F1)", QA, 32, MetricKind::QaF1),
    task("2wikimqa", "multi-document QA, 2WikiMultihopQA (F1)", QA, 32, MetricKind::QaF1),
    task("musique", "multi-document QA, MuSiQue (F1)", QA, 32, MetricKind::QaF1),
    task(
        "dureader",
        "multi-document QA, DuReader, Chinese (ROUGE-L)",
        "请基于给定的文章回答下述问题。\n\n文章：{context}\n\n请基于上述文章回答下面的问题。\n\n问题：{input}\n回答：",
        128,
        MetricKind::RougeLZh,
    ),
    task(
        "gov_report",
        "summarisation of government reports (ROUGE-L)",
        "You are given a report by a government agency. Write a one-page summary of the report.\n\nReport:\n{context}\n\nNow, write a one-page summary of the report.\n\nSummary:",
        512,
        MetricKind::RougeL,
    ),
    task(
        "qmsum",
        "query-based summarisation of meeting transcripts (ROUGE-L)",
        "You are given a meeting transcript and a query containing a question or instruction. Answer the query in one or more sentences.\n\nTranscript:\n{context}\n\nNow, answer the query based on the above meeting transcript in one or more sentences.\n\nQuery: {input}\nAnswer:",
        512,
        MetricKind::RougeL,
    ),
    task(
        "multi_news",
        "multi-document news summarisation (ROUGE-L)",
        "You are given several news passages. Write a one-page summary of all news. \n\nNews:\n{context}\n\nNow, write a one-page summary of all the news.\n\nSummary:",
        512,
        MetricKind::RougeL,
    ),
    task(
        "vcsum",
        "meeting summarisation, Chinese (ROUGE-L)",
        "下面有一段会议记录，请你阅读后，写一段总结，总结会议的内容。\n会议记录：\n{context}\n\n会议总结：",
        512,
        MetricKind::RougeLZh,
    ),
    task(
        "trec",
        "few-shot question-type classification, TREC (accuracy)",
        "Please determine the type of the question below. Here are some examples of questions.\n\n{context}\n{input}",
        64,
        MetricKind::Classification,
    ),
    task(
        "triviaqa",
        "few-shot reading comprehension, TriviaQA (F1)",
        "Answer the question based on the given passage. Only give me the answer and do not output any other words. The following are some examples.\n\n{context}\n\n{input}",
        32,
        MetricKind::QaF1,
    ),
    task(
        "samsum",
        "few-shot dialogue summarisation, SAMSum (ROUGE-L)",
        "Summarize the dialogue into a few short sentences. The following are some examples.\n\n{context}\n\n{input}",
        128,
        MetricKind::RougeL,
    ),
    task(
        "lsht",
        "few-shot news classification, Chinese (accuracy)",
        "请判断给定新闻的类别，下面是一些例子。\n\n{context}\n{input}",
        64,
        MetricKind::Classification,
    ),
    task(
        "passage_count",
        "count the unique paragraphs among duplicated ones (count score)",
        "There are some paragraphs below sourced from Wikipedia. Some of them may be duplicates. Please carefully read these paragraphs and determine how many unique paragraphs there are after removing duplicates. In other words, how many non-repeating paragraphs are there in total?\n\n{context}\n\nPlease enter the final count of unique paragraphs after removing duplicates. The output format should only contain the number, such as 1, 2, 3, and so on.\n\nThe final answer is: ",
        32,
        MetricKind::Count,
    ),
    task(
        "passage_retrieval_en",
        "find the paragraph an abstract comes from, English (retrieval score)",
        "Here are 30 paragraphs from Wikipedia, along with an abstract. Please determine which paragraph the abstract is from.\n\n{context}\n\nThe following is an abstract.\n\n{input}\n\nPlease enter the number of the paragraph that the abstract is from. The answer format must be like \"Paragraph 1\", \"Paragraph 2\", etc.\n\nThe answer is: ",
        32,
        MetricKind::Retrieval,
    ),
    task(
        "passage_retrieval_zh",
        "find the paragraph an abstract comes from, Chinese (retrieval score)",
        "以下是若干段落文字，以及其中一个段落的摘要。请确定给定的摘要出自哪一段。\n\n{context}\n\n下面是一个摘要\n\n{input}\n\n请输入摘要所属段落的编号。答案格式必须是\"段落1\"，\"段落2\"等格式\n\n答案是：",
        32,
        MetricKind::RetrievalZh,
    ),
    task(
        "lcc",
        "code completion of the next line, LCC (edit similarity)",
        "Please complete the code given below. \n{context}Next line of code:\n",
        64,
        MetricKind::CodeSimilarity,
    ),
    task(
        "repobench-p",
        "repository-level code completion, RepoBench-P (edit similarity)",
        "Please complete the code given below. \n{context}{input}Next line of code:\n",
        64,
        MetricKind::CodeSimilarity,
    ),
];

/// The task of that name. LongBench-E's files and `dataset` fields carry an `_e` suffix
/// (`hotpotqa_e`): it names the same task.
pub fn find(name: &str) -> Option<&'static Task> {
    let name = name.strip_suffix("_e").unwrap_or(name);
    TASKS.iter().find(|task| task.name == name)
}

/// The task's prompt for one sample. Replacement is single-pass, so a context that happens to contain
/// `{input}` stays as it is.
pub fn render(task: &Task, context: &str, input: &str) -> String {
    let mut prompt = String::with_capacity(task.template.len() + context.len() + input.len());
    let mut rest = task.template;
    while let Some(at) = rest.find('{') {
        prompt.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("{context}") {
            prompt.push_str(context);
            rest = after;
        } else if let Some(after) = tail.strip_prefix("{input}") {
            prompt.push_str(input);
            rest = after;
        } else {
            prompt.push('{');
            rest = &tail[1..];
        }
    }
    prompt.push_str(rest);
    prompt
}

/// LongBench truncates an over-long prompt in the middle, keeping its first and last halves (in tokens;
/// here in characters, as a scenario cannot see the tokenizer), so the instruction and the question survive.
pub fn truncate_middle(prompt: &str, max_chars: usize) -> String {
    let total = prompt.chars().count();
    if total <= max_chars {
        return prompt.to_string();
    }
    let head = max_chars / 2;
    let tail = max_chars - head;
    let head_end = prompt.char_indices().nth(head).map_or(prompt.len(), |(at, _)| at);
    let tail_start = prompt.char_indices().nth(total - tail).map_or(prompt.len(), |(at, _)| at);
    format!("{}{}", &prompt[..head_end], &prompt[tail_start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_is_found_by_name_and_e_suffix() {
        assert_eq!(TASKS.len(), 21);
        for task in TASKS {
            assert_eq!(find(task.name).unwrap().name, task.name);
            assert_eq!(find(&format!("{}_e", task.name)).unwrap().name, task.name);
            assert!(task.template.contains("{context}"), "{}", task.name);
        }
        assert!(find("needle").is_none());
        let plain: Vec<&str> = TASKS.iter().filter(|t| !t.chat).map(|t| t.name).collect();
        assert_eq!(plain, ["trec", "triviaqa", "samsum", "lsht", "lcc", "repobench-p"]);
    }

    #[test]
    fn render_fills_both_fields_once() {
        let task = find("repobench-p").unwrap();
        let prompt = render(task, "import os\n{input}\n", "def f():\n");
        assert_eq!(
            prompt,
            "Please complete the code given below. \nimport os\n{input}\ndef f():\nNext line of code:\n"
        );
    }

    #[test]
    fn truncation_keeps_both_ends() {
        assert_eq!(truncate_middle("abcdef", 10), "abcdef");
        assert_eq!(truncate_middle("abcdefghij", 4), "abij");
        assert_eq!(truncate_middle("ääöüßx", 3), "äßx");
    }
}
