//! MMLU's 57 subjects (Hendrycks et al., 2021), with the category its paper groups each under. MMLU-Redux 2.0
//! covers the same 57 (Redux 1.0 a subset of 30).

/// (subject, category)
pub const SUBJECTS: &[(&str, &str)] = &[
    ("abstract_algebra", "STEM"),
    ("anatomy", "STEM"),
    ("astronomy", "STEM"),
    ("business_ethics", "other"),
    ("clinical_knowledge", "other"),
    ("college_biology", "STEM"),
    ("college_chemistry", "STEM"),
    ("college_computer_science", "STEM"),
    ("college_mathematics", "STEM"),
    ("college_medicine", "other"),
    ("college_physics", "STEM"),
    ("computer_security", "STEM"),
    ("conceptual_physics", "STEM"),
    ("econometrics", "social sciences"),
    ("electrical_engineering", "STEM"),
    ("elementary_mathematics", "STEM"),
    ("formal_logic", "humanities"),
    ("global_facts", "other"),
    ("high_school_biology", "STEM"),
    ("high_school_chemistry", "STEM"),
    ("high_school_computer_science", "STEM"),
    ("high_school_european_history", "humanities"),
    ("high_school_geography", "social sciences"),
    ("high_school_government_and_politics", "social sciences"),
    ("high_school_macroeconomics", "social sciences"),
    ("high_school_mathematics", "STEM"),
    ("high_school_microeconomics", "social sciences"),
    ("high_school_physics", "STEM"),
    ("high_school_psychology", "social sciences"),
    ("high_school_statistics", "STEM"),
    ("high_school_us_history", "humanities"),
    ("high_school_world_history", "humanities"),
    ("human_aging", "other"),
    ("human_sexuality", "social sciences"),
    ("international_law", "humanities"),
    ("jurisprudence", "humanities"),
    ("logical_fallacies", "humanities"),
    ("machine_learning", "STEM"),
    ("management", "other"),
    ("marketing", "other"),
    ("medical_genetics", "other"),
    ("miscellaneous", "other"),
    ("moral_disputes", "humanities"),
    ("moral_scenarios", "humanities"),
    ("nutrition", "other"),
    ("philosophy", "humanities"),
    ("prehistory", "humanities"),
    ("professional_accounting", "other"),
    ("professional_law", "humanities"),
    ("professional_medicine", "other"),
    ("professional_psychology", "social sciences"),
    ("public_relations", "social sciences"),
    ("security_studies", "social sciences"),
    ("sociology", "social sciences"),
    ("us_foreign_policy", "social sciences"),
    ("virology", "other"),
    ("world_religions", "humanities"),
];

/// The subject names.
pub fn names() -> Vec<&'static str> {
    SUBJECTS.iter().map(|(name, _)| *name).collect()
}

/// Whether `name` is an MMLU subject.
pub fn is_subject(name: &str) -> bool {
    SUBJECTS.iter().any(|(subject, _)| *subject == name)
}

/// The subject as the prompt names it: "high_school_us_history" -> "high school us history".
pub fn display(subject: &str) -> String {
    subject.replace('_', " ")
}

/// The subject a file holds, from its name: `abstract_algebra.jsonl`, `abstract_algebra_test.csv`,
/// `hf:edinburgh-dawg/mmlu-redux-2.0/anatomy/test` (the config), `.../anatomy/test-00000-of-00001.parquet`.
pub fn from_file_name(name: &str) -> Option<&'static str> {
    name.split(['/', '\\', '.', '-'])
        .flat_map(|part| [part, part.strip_suffix("_test").unwrap_or(part), part.strip_suffix("_dev").unwrap_or(part)])
        .find_map(|part| SUBJECTS.iter().map(|(subject, _)| *subject).find(|subject| *subject == part))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_are_57_distinct_subjects() {
        let mut names = names();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 57);
    }

    #[test]
    fn subjects_are_read_from_file_names() {
        assert_eq!(from_file_name("abstract_algebra.jsonl"), Some("abstract_algebra"));
        assert_eq!(from_file_name("data/test/anatomy_test.csv"), Some("anatomy"));
        assert_eq!(from_file_name("hf:edinburgh-dawg/mmlu-redux-2.0/virology/test"), Some("virology"));
        assert_eq!(from_file_name("test.jsonl"), None);
        assert_eq!(display("high_school_us_history"), "high school us history");
    }
}
