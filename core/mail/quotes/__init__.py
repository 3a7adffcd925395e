"""The rules behind core.mail.reply.extract_reply: `vocab` (the words clients write around
quoted history, per language), `text` (plain-text rules and the decision), `html` (quote
containers of HTML mail turned into `>` lines for the same text rules)."""
