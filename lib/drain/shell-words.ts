/**
 * A command line split into its words the way a POSIX shell quotes them, without a shell:
 * blanks separate words; 'single quotes' keep everything; "double quotes" keep everything but
 * a backslash before \ " $ ` or a newline; a backslash outside quotes keeps the next character.
 * What only a shell would do (pipes, redirections, lists, substitutions, variables, globs,
 * `~`) is refused rather than passed on literally: such a command is asked to run through
 * `sh -c` explicitly.
 */

export class ShellWordsError extends Error {
  override readonly name = 'ShellWordsError';
}

/** Characters that, unquoted, mean something only to a shell. */
const SHELL_ONLY = new Set(['|', '&', ';', '<', '>', '(', ')', '$', '`', '*', '?', '[', '#', '~']);

/** The argv of a command line: its words, or `sh -c LINE` when a shell is asked for. */
export function commandArgv(line: string, shell: boolean): string[] {
  return shell ? ['/bin/sh', '-c', line] : parseShellWords(line);
}

/** Why a command line cannot run without a shell (or is empty), or undefined when it can. */
export function shellWordsProblem(line: string): string | undefined {
  try {
    return parseShellWords(line).length === 0 ? 'the command is empty' : undefined;
  } catch (error) {
    if (error instanceof ShellWordsError) return error.message;
    throw error;
  }
}

export function parseShellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let i = 0;
  const add = (text: string): void => {
    word = (word ?? '') + text;
  };
  while (i < line.length) {
    const c = line[i]!;
    if (c === ' ' || c === '\t' || c === '\n') {
      if (word !== undefined) words.push(word);
      word = undefined;
      i += 1;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new ShellWordsError('unterminated single quote');
      add(line.slice(i + 1, end));
      i = end + 1;
    } else if (c === '"') {
      let j = i + 1;
      let text = '';
      for (;;) {
        if (j >= line.length) throw new ShellWordsError('unterminated double quote');
        const d = line[j]!;
        if (d === '"') break;
        if (d === '\\' && j + 1 < line.length && '\\"$`\n'.includes(line[j + 1]!)) {
          if (line[j + 1] !== '\n') text += line[j + 1];
          j += 2;
        } else if (d === '$' || d === '`') {
          throw new ShellWordsError(`"${d}" inside double quotes needs a shell (or a backslash before it)`);
        } else {
          text += d;
          j += 1;
        }
      }
      add(text);
      i = j + 1;
    } else if (c === '\\') {
      if (i + 1 >= line.length) throw new ShellWordsError('a backslash at the end of the line');
      if (line[i + 1] !== '\n') add(line[i + 1]!);
      i += 2;
    } else if (SHELL_ONLY.has(c) && !(c === '#' && word !== undefined) && !(c === '~' && word !== undefined)) {
      throw new ShellWordsError(`"${c}" needs a shell: quote it, or ask for the command to run through sh -c`);
    } else {
      add(c);
      i += 1;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}
