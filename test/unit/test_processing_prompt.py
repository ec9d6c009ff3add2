"""processing.py: the OpenVLA prompt and its token ids (reference section 5)."""

import json

import pytest
from tokenizers import Tokenizer

from openvla_ros.model.testing.tokenizer import write_tiny_llama_tokenizer
from openvla_ros.processing import build_prompt, PROMPT_TEMPLATE, PromptTokenizer

SPACE = '\u2581'  # '▁'


@pytest.fixture(scope='module')
def checkpoint_dir(tmp_path_factory):
    return write_tiny_llama_tokenizer(tmp_path_factory.mktemp('checkpoint'))


@pytest.fixture(scope='module')
def vocab(checkpoint_dir):
    return json.loads((checkpoint_dir / 'tokenizer.json').read_text())['model']['vocab']


def test_build_prompt_is_the_upstream_string():
    assert PROMPT_TEMPLATE == 'In: What action should the robot take to {instruction}?\nOut:'
    assert build_prompt('Pick up the BLACK bowl') == (
        'In: What action should the robot take to pick up the black bowl?\nOut:')
    # only lower-cased: inner spacing and punctuation are kept as given
    assert build_prompt('open  the drawer.') == (
        'In: What action should the robot take to open  the drawer.?\nOut:')


@pytest.mark.parametrize('bad', ['', '   ', '\n\t'])
def test_build_prompt_rejects_blank_instructions(bad):
    with pytest.raises(ValueError, match='expected a non-empty instruction'):
        build_prompt(bad)


def test_build_prompt_rejects_non_strings():
    with pytest.raises(TypeError, match='expected the instruction as str, got bytes'):
        build_prompt(b'pick up the bowl')


def test_encode_gives_the_expected_pieces(checkpoint_dir, vocab):
    # Expected pieces written out by hand: the prompt's words are whole pieces of the tiny
    # vocabulary, '?' and ':' stand alone, the newline is the byte piece <0x0A>.
    words = 'What action should the robot take to pick up the black bowl'.split()
    pieces = ([SPACE + 'In', ':'] + [SPACE + w for w in words]
              + ['?', '<0x0A>', 'Out', ':'])
    ids = PromptTokenizer.from_checkpoint(checkpoint_dir).encode('pick up the black bowl')
    assert ids == [1] + [vocab[p] for p in pieces]
    assert ids[-1] == vocab[':'] and ids[-1] != 29871  # no trailing space / '▁'
    assert ids.count(13) == 1 and ids[ids.index(13) + 1] == vocab['Out']


@pytest.mark.parametrize('instruction', [
    'put both the alphabet soup and the tomato sauce in the basket',
    'Wipe the TABLE, then fold the towel',
    'move the cup 15 cm to the left',
])
def test_encode_equals_the_tokenizer_file_with_bos(checkpoint_dir, instruction):
    raw = Tokenizer.from_file(str(checkpoint_dir / 'tokenizer.json'))
    tokenizer = PromptTokenizer.from_checkpoint(checkpoint_dir)
    prompt = build_prompt(instruction)
    expected = [1] + raw.encode(prompt, add_special_tokens=False).ids
    assert tokenizer.encode(instruction) == expected
    assert tokenizer.decode(expected) == prompt


def test_matches_transformers_llama_tokenizer(checkpoint_dir):
    transformers = pytest.importorskip('transformers')
    reference = transformers.AutoTokenizer.from_pretrained(str(checkpoint_dir))
    tokenizer = PromptTokenizer.from_checkpoint(checkpoint_dir)
    for instruction in ('pick up the black bowl', 'Open the top drawer and put the bowl inside',
                        'stack 3 blocks \u4e2d'):
        assert tokenizer.encode(instruction) == reference(build_prompt(instruction)).input_ids


def test_bos_and_eos_follow_tokenizer_config(tmp_path, checkpoint_dir):
    raw = Tokenizer.from_file(str(checkpoint_dir / 'tokenizer.json'))
    raw.post_processor = None  # BOS must come from add_bos_token, not the file's template
    raw.save(str(tmp_path / 'tokenizer.json'))
    with_bos = PromptTokenizer.from_checkpoint(tmp_path).encode('open the drawer')  # no config
    assert with_bos[0] == 1
    (tmp_path / 'tokenizer_config.json').write_text(json.dumps(
        {'add_bos_token': False, 'add_eos_token': True,
         'eos_token': {'content': '</s>', 'special': True}}))
    tokenizer = PromptTokenizer.from_checkpoint(tmp_path)
    assert tokenizer.encode('open the drawer') == with_bos[1:] + [2]
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (1, 2,
                                                                                        32000)
    assert tokenizer.vocab_size == 32001


def test_missing_tokenizer_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f'{tmp_path / "tokenizer.json"}: tokenizer file'):
        PromptTokenizer.from_checkpoint(tmp_path)


def test_broken_tokenizer_file_is_named(tmp_path):
    (tmp_path / 'tokenizer.json').write_text('{"model": 3}')
    with pytest.raises(ValueError, match=f'{tmp_path / "tokenizer.json"}: cannot load'):
        PromptTokenizer.from_checkpoint(tmp_path)
