"""BERT tokenization as TensorFlow graph ops (TF Text), equal to the checkpoint's `tokenizers` tokenizer.

`TextTokenizer(spec)` maps a (batch,) tf.string tensor to the three model inputs, in the graph,
following `parity.serving.text_spec.TextSpec` (the tables read off the `tokenizers` library):

1. special tokens written in the text ([SEP], ...) are split out of the raw text and kept whole;
2. the rest is normalised: RE2 replacements delete `removed`, turn `spaces` into a space and put
   spaces around `isolated` (Chinese) characters; every other changed character is looked up,
   one code point at a time, in a hash table of `char_map` (lower case, accents stripped ...);
3. `punctuation` characters get spaces around them, and the text is split on spaces: BertPreTokenizer;
4. a word longer than `max_chars` characters (characters, not bytes) is the unknown token; the rest go
   through TF Text's FastWordpieceTokenizer (WordPiece's greedy longest match);
5. the word pieces are cut at `max_length - 2`, wrapped in [CLS] ... [SEP] and right-padded.

TF Text's own BertTokenizer is not used: its case folding is NFKC, which changes `…`, fullwidth
forms and more that Hugging Face's BertNormalizer keeps (docs/serving.md, "Strings in").
"""

from __future__ import annotations

import tensorflow as tf

from parity.serving.text_spec import TextSpec, char_class, special_pattern

_MISS = "\xff"  # never a value of the character table (not UTF-8): "no entry, keep the character"


def _text_ops():
    try:
        import tensorflow_text
    except ImportError:
        raise ValueError(
            "in-graph tokenization (--text exports, BertCNN.text_model) needs TensorFlow Text: "
            "pip install 'bertcnn[serving]'. Received: tensorflow_text not installed"
        ) from None
    return tensorflow_text


class TextTokenizer(tf.Module):
    """(batch,) strings -> {"input_ids", "attention_mask", "token_type_ids"}: (batch, longest) int64."""

    def __init__(self, spec: TextSpec, name: str = "text_tokenizer"):
        super().__init__(name=name)
        text = _text_ops()
        self.spec = spec
        keys = list(spec.char_map)
        init = tf.lookup.KeyValueTensorInitializer(
            tf.constant(keys, tf.string), tf.constant([spec.char_map[k] for k in keys], tf.string)
        )
        self.char_table = tf.lookup.StaticHashTable(init, default_value=_MISS)
        self.wordpiece = text.FastWordpieceTokenizer(
            vocab=list(spec.vocab),
            suffix_indicator=spec.prefix,
            max_bytes_per_word=4 * spec.max_chars + 4,  # the character limit is ours (step 4): never this one
            token_out_type=tf.int64,
            unknown_token=spec.unk_token,
            no_pretokenization=True,
            support_detokenization=False,
        )
        self._specials = special_pattern(spec)
        self._removed = char_class(spec.removed)
        self._spaces = char_class(spec.spaces)
        self._isolated = f"({char_class(spec.isolated)})"
        self._punctuation = f"({char_class(spec.punctuation)})"

    def normalize(self, pieces: tf.Tensor) -> tf.Tensor:
        """Flat strings -> their normal form with spaces between BERT words (steps 2 and 3)."""
        x = tf.strings.regex_replace(pieces, self._removed, "")
        x = tf.strings.regex_replace(x, self._spaces, " ")
        x = tf.strings.regex_replace(x, self._isolated, r" \1 ")
        chars = tf.strings.unicode_split(x, "UTF-8")
        found = self.char_table.lookup(chars.flat_values)
        mapped = chars.with_flat_values(tf.where(tf.equal(found, _MISS), chars.flat_values, found))
        x = tf.strings.reduce_join(mapped, axis=-1)
        return tf.strings.regex_replace(x, self._punctuation, r" \1 ")

    def words(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """(batch,) strings -> (batch, words) ragged strings: what WordPiece reads, specials whole."""
        text = _text_ops()
        # Invalid UTF-8 (only possible from a client that sends bytes) becomes U+FFFD, which BertNormalizer deletes.
        texts = tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)
        # TF Text's regex split stops at a NUL byte: U+0000 becomes U+0001 (BertNormalizer deletes both).
        texts = tf.strings.regex_replace(texts, "\\x00", "\x01")
        if self._specials:
            pieces = text.regex_split(texts, self._specials, keep_delim_regex_pattern=self._specials)
        else:
            pieces = tf.RaggedTensor.from_tensor(tf.expand_dims(texts, 1))
        flat = pieces.flat_values
        special = tf.strings.regex_full_match(flat, self._specials) if self._specials else tf.zeros_like(flat, tf.bool)
        flat = tf.where(special, flat, self.normalize(flat))
        words = text.regex_split(flat, " ")  # (pieces, words); empty words dropped
        too_long = tf.strings.length(words.flat_values, unit="UTF8_CHAR") > self.spec.max_chars
        words = words.with_flat_values(tf.where(too_long, self.spec.unk_token, words.flat_values))
        return pieces.with_flat_values(words).merge_dims(1, 2)

    @tf.function(input_signature=[tf.TensorSpec((None,), tf.string)])
    def __call__(self, texts: tf.Tensor) -> dict[str, tf.Tensor]:
        spec = self.spec
        ids = self.wordpiece.tokenize(self.words(texts)).merge_dims(1, 2)  # (batch, pieces)
        ids = ids[:, : spec.max_length - 2]
        batch = ids.nrows()
        cls = tf.fill([batch, 1], tf.constant(spec.cls_id, tf.int64))
        sep = tf.fill([batch, 1], tf.constant(spec.sep_id, tf.int64))
        ids = tf.concat([cls, ids, sep], axis=1)
        mask = tf.ones_like(ids)
        input_ids = ids.to_tensor(default_value=tf.constant(spec.pad_id, tf.int64))
        attention_mask = mask.to_tensor(default_value=tf.constant(0, tf.int64))
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": tf.zeros_like(input_ids),
        }


def text_outputs(logits_fn, tokenizer: TextTokenizer, config) -> tf.types.experimental.GenericFunction:
    """A tf.function (batch,) strings -> logits, the in-graph ids, and, by the model's problem type, either
    probabilities (softmax) and label (the class name), or, multi-label, probabilities (a sigmoid per label) and
    selected (bool: each probability at or over its label's threshold, `config.decision_thresholds`).

    `logits_fn(input_ids=, attention_mask=, token_type_ids=)` -> (batch, num_labels) logits.
    """
    names = tf.constant(list(config.labels), tf.string)
    thresholds = tf.constant(config.decision_thresholds, tf.float32)

    def serve_text(text):
        inputs = tokenizer(text)
        logits = logits_fn(**inputs)
        out = {"logits": logits, "input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}
        if config.multi_label:
            out["probabilities"] = tf.sigmoid(logits)
            out["selected"] = out["probabilities"] >= thresholds  # (batch, num_labels) bool
        else:
            out["probabilities"] = tf.nn.softmax(logits, axis=-1)
            out["label"] = tf.gather(names, tf.argmax(logits, axis=-1))
        return out

    return tf.function(serve_text, input_signature=[tf.TensorSpec((None,), tf.string, name="text")])


class TextBertCNN(tf.Module):
    """A Keras `BertCNN` behind the in-graph tokenizer: strings in (`BertCNN.text_model`).

    `model(["some text", ...])` -> {"logits", "probabilities", "label", "input_ids", "attention_mask"} ("selected"
    in place of "label" for a multi-label model), all in one TensorFlow graph; the same function
    `bertcnn export --format saved_model --text` saves as its `serving_text` signature.
    """

    def __init__(self, model, spec: TextSpec):
        super().__init__(name="text_bert_cnn")
        self.model = model
        self.tokenizer = TextTokenizer(spec)

        def logits(input_ids, attention_mask, token_type_ids):
            return model(input_ids, attention_mask, token_type_ids, training=False)

        self._serve = text_outputs(logits, self.tokenizer, model.config)

    def __call__(self, texts) -> dict[str, tf.Tensor]:
        if isinstance(texts, str):
            raise ValueError(f"texts must be a list of strings, not one string. Received: {texts[:40]!r}")
        return self._serve(tf.constant(texts, tf.string) if not isinstance(texts, tf.Tensor) else texts)
