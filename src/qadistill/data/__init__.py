"""QA data: typed examples, file and hub readers, named datasets, and article-level splits."""

from qadistill.data.examples import Answer, QAExample
from qadistill.data.readers import DatasetKind, detect_dataset_kind, infer_lang, read_qa_file
from qadistill.data.sources import (
    DATA_DIR_ENV,
    DATASETS,
    DatasetInfo,
    dataset_names,
    get_dataset_info,
    load_examples,
    local_paths,
    resolve_data_dir,
    rows_to_examples,
)
from qadistill.data.splits import (
    SPLIT_NAMES,
    SplitFractions,
    Splits,
    cap,
    load_split_ids,
    save_split_ids,
    split_by_article,
    splits_from_ids,
)

__all__ = [
    "DATASETS",
    "DATA_DIR_ENV",
    "SPLIT_NAMES",
    "Answer",
    "DatasetInfo",
    "DatasetKind",
    "QAExample",
    "SplitFractions",
    "Splits",
    "cap",
    "dataset_names",
    "detect_dataset_kind",
    "get_dataset_info",
    "infer_lang",
    "load_examples",
    "load_split_ids",
    "local_paths",
    "read_qa_file",
    "resolve_data_dir",
    "rows_to_examples",
    "save_split_ids",
    "split_by_article",
    "splits_from_ids",
]
