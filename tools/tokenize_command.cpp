// momentkv tokenize: the token ids of a text, space-separated on one line.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/gguf/gguf_file.h"
#include "core/tokenizer/tokenizer.h"
#include "tools/commands.h"
#include "tools/model_options.h"

namespace momentkv::tools {

int cmd_tokenize(int argc, char** argv) {
  ArgParser p("tokenize", "Print the token ids of TEXT (or of a file) on one line.");
  std::string model_path, text, file;
  bool have_text = false, no_bos = false, parse_special = false, show_pieces = false;
  p.add({"-m", "--model"}, "FILE", "GGUF model or vocabulary (default: the stories260K model)",
        [&](const std::string& v) { model_path = v; });
  p.add({"-f", "--file"}, "FILE", "tokenize the contents of FILE",
        [&](const std::string& v) { file = v; });
  p.add({"-p", "--prompt"}, "TEXT", "text to tokenize", [&](const std::string& v) {
    text = v;
    have_text = true;
  });
  p.add_switch({"--no-bos"}, "do not add BOS even when the vocabulary asks for it",
               [&] { no_bos = true; });
  p.add_switch({"--parse-special"}, "turn special-token text such as <s> into its id",
               [&] { parse_special = true; });
  p.add_switch({"--pieces"}, "print id:'piece' pairs, one per line", [&] { show_pieces = true; });
  p.positional("TEXT", "text to tokenize", [&](const std::string& v) {
    if (have_text) throw UsageError("give the text once (TEXT, -p or -f)");
    text = v;
    have_text = true;
  });
  if (!p.parse(argc, argv)) return 0;
  if (!file.empty()) {
    if (have_text) throw UsageError("give either TEXT or -f FILE, not both");
    std::ifstream in(file, std::ios::binary);
    if (!in) throw UsageError("cannot read '" + file + "'");
    std::ostringstream ss;
    ss << in.rdbuf();
    text = ss.str();
    have_text = true;
  }
  if (!have_text) throw UsageError("no text: give TEXT, -p TEXT or -f FILE");
  const auto gguf = GgufFile::open(model_path.empty() ? default_model_path() : model_path);
  const auto tok = Tokenizer::create(gguf);
  const auto ids = tok->encode(text, !no_bos, parse_special);
  if (show_pieces) {
    for (int32_t id : ids) std::printf("%d:'%s'\n", id, tok->token_to_piece(id).c_str());
    return 0;
  }
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) line.push_back(' ');
    line.append(std::to_string(ids[i]));
  }
  std::printf("%s\n", line.c_str());
  return 0;
}

}  // namespace momentkv::tools
