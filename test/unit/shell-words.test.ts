import { describe, expect, it } from 'vitest';
import { parseShellWords, ShellWordsError } from '../../lib/drain/shell-words.js';

describe('parseShellWords', () => {
  it.each([
    ['pass show mail/example', ['pass', 'show', 'mail/example']],
    ['  a \t b\n c  ', ['a', 'b', 'c']],
    ["gpg -q --decrypt '/home/jane/my secrets/mail.gpg'", ['gpg', '-q', '--decrypt', '/home/jane/my secrets/mail.gpg']],
    ['secret-tool lookup service "mail server" user jane', ['secret-tool', 'lookup', 'service', 'mail server', 'user', 'jane']],
    ['printf "%s\\n" "a \\"quoted\\" \\$x \\\\ \\z"', ['printf', '%s\\n', 'a "quoted" $x \\ \\z']],
    ["a'b'\"c\"d", ['abcd']],
    ["echo '' \"\"", ['echo', '', '']],
    ['a\\ b c\\|d', ['a b', 'c|d']],
    ["echo 'a|b;c>$d`e`'", ['echo', 'a|b;c>$d`e`']],
    ['echo a#b x~y', ['echo', 'a#b', 'x~y']],
    ['', []],
  ])('%j', (line, words) => {
    expect(parseShellWords(line)).toEqual(words);
  });

  it.each([
    ["echo 'open", /unterminated single quote/],
    ['echo "open', /unterminated double quote/],
    ['echo a\\', /backslash at the end/],
    ['cat f | head -1', /"\|" needs a shell/],
    ['pass show x; rm y', /";" needs a shell/],
    ['cat > f', /">" needs a shell/],
    ['echo $HOME', /"\$" needs a shell/],
    ['echo `id`', /"`" needs a shell/],
    ['echo "$(id)"', /inside double quotes needs a shell/],
    ['cat *.txt', /"\*" needs a shell/],
    ['cat ~/pw', /"~" needs a shell/],
    ['a && b', /"&" needs a shell/],
    ['# comment', /"#" needs a shell/],
  ])('refuses %j', (line, message) => {
    expect(() => parseShellWords(line)).toThrow(ShellWordsError);
    expect(() => parseShellWords(line)).toThrow(message);
  });
});
