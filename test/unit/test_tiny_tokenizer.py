"""model/testing/tokenizer.py: a real Llama-2-style tokenizer laid out like OpenVLA's."""

import json

import pytest
from tokenizers import Tokenizer

from openvla_ros.model.testing.tokenizer import (
    build_tiny_llama_tokenizer, INSTRUCTIONS, write_tiny_llama_tokenizer)

SPACE = '\u2581'  # '▁'


@pytest.fixture(scope='module')
def tokenizer_dir(tmp_path_factory):
    return write_tiny_llama_tokenizer(tmp_path_factory.mktemp('tiny_tokenizer'))


@pytest.fixture(scope='module')
def tokenizer_json(tokenizer_dir):
    return json.loads((tokenizer_dir / 'tokenizer.json').read_text())


@pytest.fixture(scope='module')
def tokenizer(tokenizer_dir):
    return Tokenizer.from_file(str(tokenizer_dir / 'tokenizer.json'))


def reference_bpe_ids(text, tokenizer_json):
    """Llama BPE written out: '▁'-prefixed characters, lowest-rank merge first, byte fallback."""
    model = tokenizer_json['model']
    vocab = model['vocab']
    ranks = {tuple(m.split(' ') if isinstance(m, str) else m): r
             for r, m in enumerate(model['merges'])}
    pieces = list(SPACE + text.replace(' ', SPACE))
    while True:
        candidates = [(ranks[pair], i) for i, pair in enumerate(zip(pieces, pieces[1:]))
                      if pair in ranks]
        if not candidates:
            break
        _, i = min(candidates)
        pieces[i:i + 2] = [pieces[i] + pieces[i + 1]]
    ids = []
    for piece in pieces:
        if piece in vocab:
            ids.append(vocab[piece])
        else:
            ids.extend(vocab[f'<0x{byte:02X}>'] for byte in piece.encode('utf-8'))
    return ids


def test_vocabulary_layout_matches_llama2(tokenizer):
    assert tokenizer.get_vocab_size(with_added_tokens=False) == 32000
    assert tokenizer.get_vocab_size(with_added_tokens=True) == 32001
    specials = [tokenizer.token_to_id(t) for t in ('<unk>', '<s>', '</s>', '<PAD>')]
    assert specials == [0, 1, 2, 32000]
    byte_pieces = [tokenizer.id_to_token(i) for i in (3, 13, 35, 258)]
    assert byte_pieces == ['<0x00>', '<0x0A>', '<0x20>', '<0xFF>']
    assert tokenizer.token_to_id(SPACE) == 29871
    assert tokenizer.token_to_id('\n') is None  # a newline must fall back to <0x0A>
    # single characters sit at the end, right after '▁'
    assert all(len(tokenizer.id_to_token(i)) == 1 for i in range(29871, 29871 + 60))


def test_pipeline_is_the_llama_one(tokenizer_json):
    model = tokenizer_json['model']
    assert (model['type'], model['byte_fallback'], model['fuse_unk'], model['unk_token']) == (
        'BPE', True, True, '<unk>')
    normalizers = tokenizer_json['normalizer']['normalizers']
    assert [n['type'] for n in normalizers] == ['Prepend', 'Replace']
    assert normalizers[0]['prepend'] == SPACE
    assert tokenizer_json['pre_tokenizer'] is None
    assert [d['type'] for d in tokenizer_json['decoder']['decoders']] == [
        'Replace', 'ByteFallback', 'Fuse', 'Strip']
    assert tokenizer_json['post_processor']['type'] == 'TemplateProcessing'
    added = {t['content']: (t['id'], t['special']) for t in tokenizer_json['added_tokens']}
    assert added == {'<unk>': (0, True), '<s>': (1, True), '</s>': (2, True),
                     '<PAD>': (32000, True)}


def test_merges_are_consistent_with_the_vocabulary(tokenizer_json):
    vocab = tokenizer_json['model']['vocab']
    # stored as 'a b' strings, like the released Llama-2 files (readable by every tokenizers)
    assert all(isinstance(m, str) and m.count(' ') == 1 for m in tokenizer_json['model']['merges'])
    merges = [tuple(m.split(' ')) for m in tokenizer_json['model']['merges']]
    assert 200 <= len(merges) <= 400
    for left, right in merges:
        assert left in vocab and right in vocab and left + right in vocab
    assert all(SPACE not in right for _, right in merges)  # merges never span two words
    # merged pieces come right after the bytes, in merge order (Llama: score order)
    assert [vocab[a + b] for a, b in merges] == list(range(259, 259 + len(merges)))


def test_common_words_are_single_pieces(tokenizer):
    tokens = tokenizer.encode('pick up the black bowl').tokens
    assert tokens == ['<s>', SPACE + 'pick', SPACE + 'up', SPACE + 'the', SPACE + 'black',
                      SPACE + 'bowl']


@pytest.mark.parametrize('text', [
    'In: What action should the robot take to open the top drawer?\nOut:',
    'put the cream cheese in the bowl',
    'Quickly zip  the ZEBRA-42 box!',
    'stack 3 blocks \u4e2d\u6587 then \U0001f916',
])
def test_ids_match_an_independent_bpe(text, tokenizer, tokenizer_json):
    ids = tokenizer.encode(text).ids
    assert ids[0] == 1  # BOS from the post-processor
    assert ids[1:] == reference_bpe_ids(text, tokenizer_json)
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_newline_and_unknown_characters_fall_back_to_bytes(tokenizer):
    assert tokenizer.encode('a\nb', add_special_tokens=False).ids.count(13) == 1
    chinese = tokenizer.encode('\u4e2d', add_special_tokens=False).tokens  # U+4E2D = E4 B8 AD
    assert chinese == [SPACE, '<0xE4>', '<0xB8>', '<0xAD>']


def test_config_files(tokenizer_dir):
    config = json.loads((tokenizer_dir / 'tokenizer_config.json').read_text())
    expected = {'tokenizer_class': 'LlamaTokenizer', 'add_bos_token': True,
                'add_eos_token': False, 'pad_token': '<PAD>', 'model_max_length': 2048,
                'padding_side': 'right', 'legacy': False, 'bos_token': '<s>',
                'eos_token': '</s>', 'unk_token': '<unk>'}
    assert {k: config[k] for k in expected} == expected
    assert config['added_tokens_decoder']['32000']['content'] == '<PAD>'
    assert json.loads((tokenizer_dir / 'added_tokens.json').read_text()) == {'<PAD>': 32000}
    special = json.loads((tokenizer_dir / 'special_tokens_map.json').read_text())
    assert special['pad_token'] == '<PAD>' and special['bos_token']['content'] == '<s>'


def test_building_is_deterministic(tmp_path, tokenizer_dir):
    again = write_tiny_llama_tokenizer(tmp_path / 'again')
    for name in ('tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json',
                 'added_tokens.json'):
        assert (again / name).read_bytes() == (tokenizer_dir / name).read_bytes(), name
    assert build_tiny_llama_tokenizer().to_str() == build_tiny_llama_tokenizer().to_str()


def test_training_corpus_has_no_newline():
    assert not any('\n' in text for text in INSTRUCTIONS)
