// Qwen ChatML rendering and loss weights. Reproduces, for system/user/assistant messages,
// shared/data/qwen2-tokenizer/chat_template.qwen2-instruct.jinja and
// chat_template.qwen2.5-instruct.jinja (without tools): a default system turn when the first
// message is not a system message, then "<|im_start|>{role}\n{content}<|im_end|>\n" per turn.
#include "eztinker/tokenizer.h"
#include "tokenizer/unicode_util.h"

#include <stdexcept>

namespace eztinker::tokenizer {

namespace {

constexpr std::string_view kImStart = "<|im_start|>";
constexpr std::string_view kImEnd = "<|im_end|>";

std::string_view default_system_prompt(ChatTemplate t) {
  return t == ChatTemplate::kQwen25
             ? "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
             : "You are a helpful assistant.";
}

void check_role(const ChatMessage& m) {
  if (m.role != "system" && m.role != "user" && m.role != "assistant") {
    throw std::invalid_argument("chat message role \"" + m.role +
                                "\" is not one of system, user, assistant");
  }
}

// Where one message's content sits in the rendered text.
struct ContentSpan {
  size_t begin;
  size_t end;  // the closing <|im_end|> starts here
  size_t message;
};

// Renders and records content spans. transform is applied to each content (identity for
// apply_chat_template, sanitize+NFC for weight alignment).
template <typename Transform>
std::string render(ChatTemplate t,
                   const std::vector<ChatMessage>& messages,
                   bool add_generation_prompt,
                   Transform&& transform,
                   std::vector<ContentSpan>* spans) {
  for (const auto& m : messages) check_role(m);
  std::string out;
  // note: the Qwen2 template inserts the default system turn inside its loop (so nothing for an
  // empty conversation); Qwen2.5's does it before the loop, so even for an empty one.
  const bool needs_default =
      messages.empty() ? t == ChatTemplate::kQwen25 : messages[0].role != "system";
  if (needs_default) {
    out.append(kImStart).append("system\n").append(default_system_prompt(t)).append(kImEnd);
    out.push_back('\n');
  }
  for (size_t i = 0; i < messages.size(); ++i) {
    out.append(kImStart).append(messages[i].role).push_back('\n');
    const size_t begin = out.size();
    out.append(transform(messages[i].content));
    if (spans != nullptr) spans->push_back({begin, out.size(), i});
    out.append(kImEnd).push_back('\n');
  }
  if (add_generation_prompt) out.append(kImStart).append("assistant\n");
  return out;
}

}  // namespace

std::string render_chat_template(ChatTemplate chat_template,
                                 const std::vector<ChatMessage>& messages,
                                 bool add_generation_prompt) {
  return render(
      chat_template,
      messages,
      add_generation_prompt,
      [](const std::string& s) -> const std::string& { return s; },
      nullptr);
}

std::string Tokenizer::apply_chat_template(const std::vector<ChatMessage>& messages,
                                           bool add_generation_prompt) const {
  return render_chat_template(chat_template_, messages, add_generation_prompt);
}

ChatEncoding Tokenizer::encode_chat(const std::vector<ChatMessage>& messages,
                                    bool add_generation_prompt,
                                    TrainOn train_on) const {
  size_t last_assistant = messages.size();
  for (size_t i = 0; i < messages.size(); ++i) {
    if (messages[i].role == "assistant") last_assistant = i;
  }
  auto trained = [&](size_t i) {
    if (messages[i].role != "assistant") return false;
    return train_on != TrainOn::kLastAssistant || i == last_assistant;
  };

  // Render with contents already in the form encode() tokenizes (valid UTF-8, NFC), so that
  // the byte lengths of the tokens walk the rendered text exactly.
  std::vector<ContentSpan> spans;
  const std::string text = render(
      chat_template_,
      messages,
      add_generation_prompt,
      [](const std::string& s) { return detail::nfc(detail::sanitize_utf8(s)); },
      &spans);
  ChatEncoding enc;
  enc.ids = encode(text, true);
  enc.weights.assign(enc.ids.size(), train_on == TrainOn::kAll ? 1.0f : 0.0f);
  if (train_on == TrainOn::kAll) return enc;

  const auto im_end = token_to_id(kImEnd);
  std::vector<size_t> starts(enc.ids.size() + 1, 0);
  bool tiles = true;  // do the token bytes spell the rendered text exactly?
  for (size_t t = 0; t < enc.ids.size() && tiles; ++t) {
    const std::string bytes = token_bytes(enc.ids[t]);
    tiles = text.compare(starts[t], bytes.size(), bytes) == 0;
    starts[t + 1] = starts[t] + bytes.size();
  }
  if (tiles && starts.back() == text.size()) {
    size_t t = 0;
    for (const ContentSpan& span : spans) {
      if (!trained(span.message)) continue;
      while (t < enc.ids.size() && starts[t + 1] <= span.begin) ++t;  // tokens before the content
      for (; t < enc.ids.size() && starts[t] < span.end; ++t) enc.weights[t] = 1.0f;
      if (t < enc.ids.size() && starts[t] == span.end && im_end && enc.ids[t] == *im_end) {
        enc.weights[t] = 1.0f;
      }
    }
    return enc;
  }

  // Token bytes do not spell the text (e.g. SentencePiece's dummy prefix and whitespace
  // normalization, or an lstrip added token): tokenize each part on its own instead, so every token
  // has one owner.
  ChatEncoding parts;
  auto add = [&](std::string_view s, float w) {
    for (int32_t id : encode(s, true)) {
      parts.ids.push_back(id);
      parts.weights.push_back(w);
    }
  };
  size_t pos = 0;
  for (const ContentSpan& span : spans) {
    const float w = trained(span.message) ? 1.0f : 0.0f;
    add(std::string_view(text).substr(pos, span.begin - pos), 0.0f);
    add(std::string_view(text).substr(span.begin, span.end - span.begin), w);
    add(kImEnd, w);
    pos = span.end + kImEnd.size();
  }
  add(std::string_view(text).substr(pos), 0.0f);
  return parts;
}

}  // namespace eztinker::tokenizer
