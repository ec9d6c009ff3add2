"""A tiny but real Llama-2-style tokenizer for tests (no downloads, built in well under 2 s).

Same pipeline and id layout as the OpenVLA checkpoint's `tokenizer.json`: BPE with byte fallback,
`<unk>`/`<s>`/`</s>` = 0/1/2, byte pieces `<0x00>`..`<0xFF>` = 3..258, merged pieces next, the
single characters last with '▁' = 29871, 32000 pieces in all plus the added `<PAD>` = 32000.
Only the merges are small: they are learned from a short robot-instruction corpus, so common
words become one or two pieces and anything else falls back to characters or bytes. Ids in the
unused middle are unreachable placeholder pieces.
"""

import json
import pathlib
import string

from tokenizers import AddedToken, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers import Tokenizer, trainers

SPACE_PIECE = '\u2581'  # '▁', SentencePiece's word-boundary marker
UNK, BOS, EOS, PAD = '<unk>', '<s>', '</s>', '<PAD>'
VOCAB_SIZE = 32000                 # Llama-2 pieces; <PAD> is added on top as 32000
SPACE_PIECE_ID = 29871             # '▁', appended by OpenVLA's predict_action
FIRST_BYTE_ID = 3                  # '<0x00>'; '\n' = '<0x0A>' = 13
NUM_MERGES = 400
MODEL_MAX_LENGTH = 2048

INSTRUCTIONS = (
    'pick up the black bowl and place it on the plate',
    'pick up the black bowl between the plate and the ramekin and place it on the plate',
    'pick up the black bowl next to the cookie box and place it on the plate',
    'pick up the black bowl on the wooden cabinet and place it on the plate',
    'pick up the black bowl in the top drawer of the wooden cabinet and place it on the plate',
    'pick up the alphabet soup and place it in the basket',
    'pick up the cream cheese and place it in the basket',
    'pick up the tomato sauce and place it in the basket',
    'pick up the ketchup and place it in the basket',
    'pick up the orange juice and place it in the basket',
    'pick up the milk and place it in the basket',
    'pick up the butter and place it in the basket',
    'pick up the salad dressing and place it in the basket',
    'pick up the book and place it in the back compartment of the caddy',
    'open the middle drawer of the cabinet',
    'open the top drawer and put the bowl inside',
    'close the top drawer of the cabinet',
    'put the bowl on the stove',
    'put the wine bottle on top of the cabinet',
    'put the wine bottle on the rack',
    'put the cream cheese in the bowl',
    'put the bowl on the plate',
    'put the bowl on top of the cabinet',
    'put both the alphabet soup and the tomato sauce in the basket',
    'put both the cream cheese box and the butter in the basket',
    'put both moka pots on the stove',
    'put the black bowl in the bottom drawer of the cabinet and close it',
    'put the white mug on the left plate and put the yellow and white mug on the right plate',
    'put the white mug on the plate and put the chocolate pudding to the right of the plate',
    'push the plate to the front of the stove',
    'turn on the stove and put the moka pot on it',
    'stack the green block on top of the red block',
    'move the blue cup to the left side of the table',
    'wipe the table with the sponge',
    'put X into pot',
    'fold the towel and hang it on the rack',
)
PROMPT_PREFIX = 'In: What action should the robot take to '
PROMPT_SUFFIX = '?'  # '\nOut:' is trained on its own: a newline must stay out of the vocab


def training_corpus(extra_instructions=()) -> list[str]:
    """Prompts as OpenVLA writes them (minus the newline) plus the bare instructions.

    `extra_instructions` (e.g. a dataset's tasks) join `INSTRUCTIONS`, so their words become
    merged pieces too.
    """
    instructions = list(INSTRUCTIONS) + [text.lower() for text in extra_instructions]
    corpus = [PROMPT_PREFIX + text + PROMPT_SUFFIX for text in instructions]
    corpus += instructions + ['Out:'] * 4
    return corpus


def learn_merges(corpus, num_merges: int = NUM_MERGES) -> tuple[list[str], list[tuple]]:
    """Train a small BPE on `corpus` split at word starts and punctuation (as Llama's pieces).

    The alphabet is '▁' plus printable ASCII; never a newline, which must fall back to '<0x0A>'.
    Returns (characters, '▁' first then by descending frequency; merges in rank order).
    """
    counts = {char: 0 for char in string.ascii_letters + string.digits + string.punctuation}
    for text in corpus:
        for char in SPACE_PIECE + text.replace(' ', SPACE_PIECE):
            counts[char] = counts.get(char, 0) + 1
    characters = sorted(counts, key=lambda c: (c != SPACE_PIECE, -counts[c], c))
    trainer_tokenizer = Tokenizer(models.BPE())
    trainer_tokenizer.normalizer = _llama_normalizer()
    trainer_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement=SPACE_PIECE, prepend_scheme='never', split=True),
        pre_tokenizers.Punctuation('isolated')])
    trainer = trainers.BpeTrainer(
        vocab_size=len(characters) + num_merges, min_frequency=2, show_progress=False,
        initial_alphabet=characters, limit_alphabet=len(characters))
    trainer_tokenizer.train_from_iterator(corpus, trainer)
    merges = json.loads(trainer_tokenizer.to_str())['model']['merges']
    return characters, [tuple(m.split(' ')) if isinstance(m, str) else tuple(m) for m in merges]


def llama_vocabulary(characters, merges) -> dict[str, int]:
    """Lay pieces out like Llama-2: specials, bytes, merged pieces, placeholders, characters."""
    pieces = [UNK, BOS, EOS] + [f'<0x{value:02X}>' for value in range(256)]
    pieces += [left + right for left, right in merges]
    if len(pieces) > SPACE_PIECE_ID:
        raise ValueError(f'expected at most {SPACE_PIECE_ID} pieces before the characters, '
                         f'got {len(pieces)}')
    if characters[0] != SPACE_PIECE or len(characters) > VOCAB_SIZE - SPACE_PIECE_ID:
        raise ValueError(f'expected "▁" first and at most {VOCAB_SIZE - SPACE_PIECE_ID} '
                         f'characters, got {characters[:3]}... ({len(characters)})')
    pieces += [f'<unused{i}>' for i in range(len(pieces), SPACE_PIECE_ID)]
    pieces += characters
    pieces += [f'<unused{i}>' for i in range(len(pieces), VOCAB_SIZE)]
    vocab = {piece: index for index, piece in enumerate(pieces)}
    if len(vocab) != VOCAB_SIZE:
        raise ValueError(f'expected {VOCAB_SIZE} distinct pieces, got {len(vocab)}')
    return vocab


def build_tiny_llama_tokenizer(extra_instructions=()) -> Tokenizer:
    """Build the tokenizer that `write_tiny_llama_tokenizer` saves as `tokenizer.json`."""
    characters, merges = learn_merges(training_corpus(extra_instructions))
    vocab = llama_vocabulary(characters, merges)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=UNK, fuse_unk=True,
                                     byte_fallback=True))
    tokenizer.normalizer = _llama_normalizer()
    tokenizer.pre_tokenizer = None
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f'{BOS}:0 $A:0', pair=f'{BOS}:0 $A:0 {BOS}:1 $B:1', special_tokens=[(BOS, 1)])
    tokenizer.decoder = decoders.Sequence([
        decoders.Replace(SPACE_PIECE, ' '), decoders.ByteFallback(), decoders.Fuse(),
        decoders.Strip(' ', 1, 0)])
    tokenizer.add_special_tokens([_special(UNK), _special(BOS), _special(EOS)])
    tokenizer.add_special_tokens([_special(PAD)])  # -> 32000, after the 32000 pieces
    return tokenizer


def write_tiny_llama_tokenizer(directory, extra_instructions=()) -> pathlib.Path:
    """Write tokenizer.json and the three Llama config files into `directory`; return it."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    data = json.loads(build_tiny_llama_tokenizer(extra_instructions).to_str())
    # Released Llama-2 files store merges as 'a b' strings (tokenizers < 0.20 format); newer
    # tokenizers write pairs. Keep the released format: every tokenizers version reads it.
    data['model']['merges'] = [' '.join(pair) for pair in data['model']['merges']]
    _write_json(directory / 'tokenizer.json', data)
    special = {name: _special_dict(token) for name, token in
               (('bos_token', BOS), ('eos_token', EOS), ('unk_token', UNK))}
    config = {
        'add_bos_token': True,
        'add_eos_token': False,
        'added_tokens_decoder': {str(i): dict(_special_dict(t), special=True) for i, t in
                                 ((0, UNK), (1, BOS), (2, EOS), (VOCAB_SIZE, PAD))},
        **{name: value['content'] for name, value in special.items()},
        'clean_up_tokenization_spaces': False,
        'legacy': False,
        'model_max_length': MODEL_MAX_LENGTH,
        'pad_token': PAD,
        'padding_side': 'right',
        'sp_model_kwargs': {},
        'tokenizer_class': 'LlamaTokenizer',
        'use_default_system_prompt': False,
    }
    _write_json(directory / 'tokenizer_config.json', config)
    _write_json(directory / 'special_tokens_map.json', dict(special, pad_token=PAD))
    _write_json(directory / 'added_tokens.json', {PAD: VOCAB_SIZE})
    return directory


def _llama_normalizer():
    return normalizers.Sequence([normalizers.Prepend(SPACE_PIECE),
                                 normalizers.Replace(' ', SPACE_PIECE)])


def _special(content: str) -> AddedToken:
    return AddedToken(content, lstrip=False, rstrip=False, single_word=False, normalized=False,
                      special=True)


def _special_dict(content: str) -> dict:
    return {'content': content, 'lstrip': False, 'normalized': False, 'rstrip': False,
            'single_word': False}


def _write_json(path: pathlib.Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + '\n')
