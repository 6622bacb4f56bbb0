//! Avoiding duplicate construction (避免重复建设): projects compared by what they build.
//!
//! Each project's text — its name (counted twice: a name says most in fewest words), its
//! description, its construction content and equipment, and its implementation plan once filed —
//! is cut into words by jieba (Chinese; English and digits pass through as words), common words
//! and counts are dropped, English plurals are folded, and the projects are ranked against one
//! another with BM25 (the `bm25` crate's embedder and scorer). A match's similarity is its
//! score over the project's score against itself, so 1.0 is "says the same thing" whatever the
//! texts' lengths; the terms shown are the shared words that weigh most (rarest first).
//!
//! The index is built for each question from the projects' text columns: a city has hundreds
//! to a few thousand live projects, and a project's words change with every edit and plan.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use bm25::{EmbedderBuilder, Scorer, Tokenizer};
use jieba_rs::Jieba;

/// Matches below this similarity are not shown. On the evaluation corpus
/// (tests/data/duplicate-corpus.json) every known duplicate scores 0.39 or more and every other
/// project 0.30 or less; this sits in the gap. It was chosen on that corpus, which has no
/// held-out part: docs/duplicates.md says what that means for the figures.
pub const MIN_SIMILARITY: f64 = 0.33;

/// What a project builds, in words.
#[derive(Debug, Clone, Default)]
pub struct ProjectText {
    pub name: String,
    pub description: String,
    pub construction: String,
    pub equipment: String,
    /// The implementation plan's task plan, system design and equipment, once filed.
    pub plan: String,
}

impl ProjectText {
    fn words(&self) -> Vec<String> {
        let text = [
            self.name.as_str(),
            &self.name,
            &self.description,
            &self.construction,
            &self.equipment,
            &self.plan,
        ]
        .join("\n");
        words(&text)
    }
}

/// A project like the one asked about.
#[derive(Debug, Clone, PartialEq)]
pub struct Match<K> {
    pub key: K,
    /// 0 to 1.
    pub similarity: f64,
    /// The shared words that weigh most, rarest first.
    pub terms: Vec<String>,
}

static JIEBA: LazyLock<Jieba> = LazyLock::new(Jieba::new);

/// Words that say nothing about what a project builds: function words, and the words every
/// IT project uses of itself.
const STOP_WORDS: &[&str] = &[
    "的",
    "和",
    "与",
    "及",
    "等",
    "对",
    "在",
    "为",
    "并",
    "或",
    "将",
    "从",
    "向",
    "按",
    "以",
    "由",
    "实现",
    "提供",
    "支持",
    "进行",
    "开展",
    "推进",
    "提升",
    "建设",
    "建立",
    "搭建",
    "项目",
    "工程",
    "系统",
    "平台",
    "全市",
    "主城区",
    "各类",
    "相关",
    "统一",
    "服务",
    "管理",
    "信息",
    "信息化",
    "数据",
    "智能",
    "智慧",
    "实时",
    "城市",
    "市级",
    "我市",
    "台",
    "套",
    "个",
    "只",
    "路",
    "万",
    "服务器",
    "存储",
    "设备",
    "安装",
    "升级",
    "业务",
    "应用",
    "功能",
    "用户",
    "管理系统",
    "信息管理",
    "信息系统",
    "信息管理系统",
    "server",
    "storage",
    "the",
    "and",
    "of",
    "a",
    "an",
    "to",
    "in",
    "with",
    "for",
    "on",
    "by",
    "from",
    "into",
    "one",
    "its",
    "their",
    "is",
    "are",
    "be",
    "as",
    "at",
    "or",
    "city",
    "system",
    "platform",
    "build",
    "project",
    "phase",
    "new",
    "existing",
];

static STOPS: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| STOP_WORDS.iter().copied().collect());

/// The words of `text` that can tell one project from another.
pub fn words(text: &str) -> Vec<String> {
    JIEBA
        .cut_for_search(text, true)
        .into_iter()
        .filter_map(|w| {
            let w = w.word.trim().to_lowercase();
            let chars = w.chars().count();
            // A lone Chinese character is a particle or a measure word, not a thing built.
            let lone_character = chars == 1 && !w.is_ascii();
            let number = w.chars().all(|c| c.is_ascii_digit() || c == '.');
            let meaningful = w.chars().any(char::is_alphanumeric) && !number && !lone_character;
            // The search mode also yields pieces of longer words: a piece of a stop word
            // ("务器" of "服务器") is as empty as the word.
            let stop = STOPS.contains(w.as_str())
                || STOPS
                    .iter()
                    .any(|s| s.chars().count() > chars && s.contains(w.as_str()));
            (meaningful && !stop).then(|| singular(w))
        })
        .collect()
}

/// English plurals folded to their singular, so "sensors" meets "sensor".
fn singular(word: String) -> String {
    if !word.is_ascii() || word.len() <= 3 || word.ends_with("ss") {
        return word;
    }
    if let Some(stem) = word.strip_suffix("ies") {
        return format!("{stem}y");
    }
    match word.strip_suffix('s') {
        Some(stem) => stem.to_owned(),
        None => word,
    }
}

/// Texts already cut into words, joined by a separator no word contains.
const SEPARATOR: char = '\u{1f}';

#[derive(Default)]
struct Pretokenized;

impl Tokenizer for Pretokenized {
    fn tokenize(&self, input_text: &str) -> Vec<String> {
        input_text
            .split(SEPARATOR)
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// The projects in `corpus` most like `corpus[query]`, most similar first: at most `limit`,
/// none below [`MIN_SIMILARITY`], never the project itself.
pub fn similar<K: Clone>(corpus: &[(K, ProjectText)], query: usize, limit: usize) -> Vec<Match<K>> {
    let words: Vec<Vec<String>> = corpus.iter().map(|(_, text)| text.words()).collect();
    let Some(query_words) = words.get(query) else {
        return Vec::new();
    };
    let total: usize = words.iter().map(Vec::len).sum();
    let avgdl = (total as f32 / corpus.len().max(1) as f32).max(1.0);
    let embedder = EmbedderBuilder::<u32, Pretokenized>::with_avgdl(avgdl)
        .tokenizer(Pretokenized)
        .build();
    let joined = |w: &[String]| w.join(&SEPARATOR.to_string());
    let mut scorer = Scorer::<usize, u32>::new();
    for (i, w) in words.iter().enumerate() {
        scorer.upsert(&i, embedder.embed(&joined(w)));
    }
    // The query counts each word once: a word repeated in it is not more wanted.
    let mut seen = HashSet::new();
    let distinct: Vec<String> = query_words
        .iter()
        .filter(|w| seen.insert(w.as_str()))
        .cloned()
        .collect();
    let probe = embedder.embed(&joined(&distinct));
    let Some(itself) = scorer.score(&query, &probe).filter(|s| *s > 0.0) else {
        return Vec::new();
    };
    let document_frequency = document_frequency(&words);
    let query_set: HashSet<&str> = distinct.iter().map(String::as_str).collect();
    scorer
        .matches(&probe)
        .into_iter()
        .filter(|m| m.id != query)
        .map(|m| (m.id, (f64::from(m.score) / f64::from(itself)).min(1.0)))
        .filter(|(_, similarity)| *similarity >= MIN_SIMILARITY)
        .take(limit)
        .map(|(i, similarity)| {
            let mut shared: Vec<&str> = words[i]
                .iter()
                .map(String::as_str)
                .filter(|w| query_set.contains(w))
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            shared.sort_by(|a, b| {
                document_frequency[a]
                    .cmp(&document_frequency[b])
                    .then_with(|| b.chars().count().cmp(&a.chars().count()))
                    .then_with(|| a.cmp(b))
            });
            // A word inside another shared word says nothing more ("小学" beside "中小学").
            let whole: Vec<&str> = shared
                .iter()
                .copied()
                .filter(|w| !shared.iter().any(|o| o != w && o.contains(w)))
                .collect();
            Match {
                key: corpus[i].0.clone(),
                similarity: (similarity * 10_000.0).round() / 10_000.0,
                terms: whole.into_iter().take(8).map(str::to_owned).collect(),
            }
        })
        .collect()
}

fn document_frequency(words: &[Vec<String>]) -> HashMap<&str, usize> {
    let mut df = HashMap::new();
    for doc in words {
        for w in doc.iter().map(String::as_str).collect::<HashSet<_>>() {
            *df.entry(w).or_insert(0) += 1;
        }
    }
    df
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_drop_what_every_project_says_and_keep_what_it_builds() {
        let w = words("建设全市统一的政务数据共享交换平台，采购国产服务器12台 and 600 sensors");
        assert!(w.contains(&"共享".to_owned()), "{w:?}");
        assert!(w.contains(&"交换".to_owned()), "{w:?}");
        assert!(w.contains(&"国产".to_owned()), "{w:?}");
        assert!(w.contains(&"sensor".to_owned()), "{w:?}");
        // Every project buys servers; a piece of a dropped word goes with it.
        for dropped in [
            "建设",
            "的",
            "平台",
            "12",
            "600",
            "and",
            "全市",
            "服务器",
            "务器",
        ] {
            assert!(!w.contains(&dropped.to_owned()), "{dropped}: {w:?}");
        }
    }

    #[test]
    fn a_project_is_most_like_its_duplicate_and_not_like_itself() {
        let text = |name: &str, description: &str| ProjectText {
            name: name.into(),
            description: description.into(),
            ..Default::default()
        };
        let corpus = vec![
            (
                "a",
                text("智慧交通信号控制系统", "路口信号灯自适应配时，缓解拥堵"),
            ),
            (
                "b",
                text("交通信号灯智能配时改造", "路口信号机自适应配时改造"),
            ),
            ("c", text("数字档案馆", "馆藏纸质档案数字化扫描")),
        ];
        let found = similar(&corpus, 0, 5);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].key, "b");
        assert!(found[0].similarity > 0.3 && found[0].similarity <= 1.0);
        assert!(found[0].terms.contains(&"配时".to_owned()), "{found:?}");
        assert!(similar(&corpus, 2, 5).is_empty());
        assert!(similar(&corpus, 9, 5).is_empty());
    }
}
