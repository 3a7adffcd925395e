"""The words mail clients put around quoted history, per language, as compiled patterns.

Languages: English, German, French, Spanish, Portuguese, Italian, Dutch, Danish, Swedish,
Norwegian, Finnish, Polish, Russian, Ukrainian, Chinese, Japanese (the ones the issue names),
plus Czech, Turkish, Hungarian and Korean where a client's wording was at hand. Every pattern
works on one stripped line (or a few joined ones) of bounded length, so none can backtrack for
long on hostile input.
"""

from __future__ import annotations

import re

# ---- Outlook/Exchange header blocks: "From: … / Sent: … / To: … / Subject: …" -----------------
# The names Outlook (desktop, web, mobile), Apple Mail, Thunderbird and Gmail's forward/quote
# blocks use, per language. Sender and date start a block; the others continue it.
_FROM = [
    "From", "Von", "De", "Da", "Van", "Fra", "Från", "Lähettäjä", "Od", "От", "Від", "发件人",
    "寄件者", "寄件人", "差出人", "送信者", "Kimden", "Feladó", "보낸 사람", "Afzender", "Remitente",
]
_DATE = [
    "Sent", "Date", "Gesendet", "Datum", "Envoyé", "Date d'envoi", "Enviado", "Enviada", "Fecha",
    "Data", "Inviato", "Verzonden", "Verstuurd", "Sendt", "Dato", "Skickat", "Lähetetty",
    "Päivämäärä", "Wysłano", "Wysłane", "Отправлено", "Дата", "Надіслано", "发送时间", "日期",
    "時間", "寄件日期", "送信日時", "日付", "Tarih", "Gönderildi", "Elküldve", "Dátum", "Odesláno",
    "보낸 날짜",
]
_OTHER = [
    "To", "Cc", "Bcc", "Subject", "Reply-To", "An", "Betreff", "Kopie", "À", "A", "Objet", "Para",
    "Asunto", "Assunto", "Oggetto", "Aan", "Onderwerp", "Til", "Emne", "Kopi", "Till", "Ämne",
    "Kopia", "Vastaanottaja", "Kopio", "Aihe", "Do", "DW", "Temat", "Кому", "Копия", "Тема",
    "Копія", "收件人", "抄送", "主题", "收件者", "副本", "主旨", "宛先", "件名", "Kime", "Konu",
    "Címzett", "Tárgy", "Komu", "Předmět", "받는 사람", "제목", "참조", "Organization", "Sujet",
    "Copie à", "Enviado el", "Envoyé le",
]


def _names(words: list[str]) -> str:
    return "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))


# "*From:* Bob", "From: Bob [mailto:bob@x]", "发件人：张伟" — bold stars (Gmail's plain text of an
# HTML quote), and the full-width colon of Chinese and Japanese clients
_FIELD = r"^[>\s]*\*{0,2}\s*(?:%s)\s*\*{0,2}\s*[:：]\s*\*{0,2}(?:\s|$)"
FROM_FIELD = re.compile(_FIELD % _names(_FROM), re.IGNORECASE)
DATE_FIELD = re.compile(_FIELD % _names(_DATE), re.IGNORECASE)
OTHER_FIELD = re.compile(_FIELD % _names(_OTHER), re.IGNORECASE)

# ---- "-----Original Message-----" and its translations, with any dashes or none ---------------
# Outlook desktop ("-----Original Message-----"), Outlook/Gmail on Android and Samsung Mail
# ("-------- Original message --------"), BlackBerry, Lotus Notes, Apple Mail's translations.
_ORIGINAL = [
    "Original Message", "Original message", "Reply Message", "Ursprüngliche Nachricht",
    "Originalnachricht", "Original-Nachricht", "Antwort Nachricht", "Message d'origine",
    "Message original", "Mensaje original", "Mensagem original", "Messaggio originale",
    "Messaggio Originale", "Oorspronkelijk bericht", "Origineel bericht", "Oprindelig meddelelse",
    "Oprindelig besked", "Ursprungligt meddelande", "Originalmeddelande", "Opprinnelig melding",
    "Alkuperäinen viesti", "Wiadomość oryginalna", "Oryginalna wiadomość", "Исходное сообщение",
    "Оригинальное сообщение", "Исходное письмо", "Вихідне повідомлення", "Оригінальне повідомлення",
    "Початкове повідомлення", "原始邮件", "原始郵件", "原邮件", "元のメッセージ", "オリジナル メッセージ",
    "Původní zpráva", "Původní e-mail", "Orijinal Mesaj", "Eredeti üzenet", "원본 메시지",
]
ORIGINAL_MESSAGE = re.compile(
    r"^[>\s]*[-_=*~ ]*\s*(?:%s)\s*[-_=*~ ]*:?\s*$" % _names(_ORIGINAL), re.IGNORECASE
)

# Tobit david writes its own line above a header without colons ("Von Marine Ho" / "An John")
DAVID = re.compile(r"^\[?Original Message processed by david", re.IGNORECASE)

# ---- forwarded mail: the forward is the request, kept whole -----------------------------------
_FORWARDED = [
    "Forwarded message", "Forwarded Message", "Begin forwarded message", "Weitergeleitete Nachricht",
    "Anfang der weitergeleiteten Nachricht", "Message transféré", "Début du message réexpédié",
    "Début du message transféré", "Mensaje reenviado", "Comienzo del mensaje reenviado",
    "Mensagem encaminhada", "Início da mensagem reencaminhada", "Messaggio inoltrato",
    "Inizio messaggio inoltrato", "Doorgestuurd bericht", "Begin doorgestuurd bericht",
    "Videresendt meddelelse", "Videresendt besked", "Start på videresendt besked",
    "Vidarebefordrat meddelande", "Vidarebefordrat brev", "Videresendt melding",
    "Välitetty viesti", "Wiadomość przekazana dalej", "Przekazana wiadomość",
    "Пересылаемое сообщение", "Пересланное сообщение", "Переслане повідомлення",
    "Пересланий лист", "转发的邮件", "轉寄的郵件", "転送されたメッセージ", "転送メッセージ",
    "Přeposlaná zpráva", "İletilen ileti", "Továbbított üzenet", "전달된 메시지",
]
FORWARDED = re.compile(r"^[>\s]*[-_=*~ ]*\s*(?:%s)\s*[-_=*~ ]*[:：]?\s*$" % _names(_FORWARDED), re.IGNORECASE)

# ---- attribution lines: "On … wrote:" and its translations -------------------------------------
# Gmail, Apple Mail, Thunderbird, K-9, Outlook for Mac/iOS. The verb ends the line ("… wrote:",
# "… a écrit :", "… napisał(a):", "…写道：") or comes before the sender ("Am … schrieb Bob <b@x>:",
# "Den … skrev Bob <b@x>:", "Op … schreef Bob <b@x>:").
_WROTE = [
    "wrote", "writes", "schrieb", "a écrit", "escribió", "escreveu", "ha scritto", "scrisse",
    "schreef", "het volgende geschreven", "heeft geschreven", "skrev", "kirjoitti", "napisał\\(a\\)", "napisał",
    "napisała", "pisze", "nadesłał", "написал\\(а\\)", "написал", "написала", "пишет", "написав",
    "написала", "пише", "写道", "寫道", "napsal\\(a\\)", "napsal", "yazdı", "írta", "作成",
]
_WROTE_ALT = "|".join(sorted(_WROTE, key=len, reverse=True))
# "wrote" ends the attribution, perhaps with its colon, a ")" or dashes ("---- Bob wrote ----")
WROTE_END = re.compile(r"(?:^|[\s,>)\]])(?:%s)\s*[-:：]*\s*$" % _WROTE_ALT, re.IGNORECASE)
# Chinese, Japanese and Korean clients write the verb against the date or address, with no
# space: "…上午10:00写道：", "…<yamada@example.jp>のメール:", "…<b@x>님이 작성:"
_CJK_WROTE = ["写道", "寫道", "のメッセージ", "のメール", "が書きました", "님이 작성", "님이 작성하였습니다"]
WROTE_END_CJK = re.compile(r"(?:%s)\s*[:：]?\s*$" % "|".join(_CJK_WROTE))
# the verb inside, then a sender, then the colon: "… schrieb Bob Smith <bob@example.com>:"
WROTE_INSIDE = re.compile(r"(?:^|[\s,])(?:%s)\s+\S.{0,200}[:：]\s*$" % _WROTE_ALT, re.IGNORECASE)
# how attributions start: "On", "Am", "Le", "El", "Em", "Op", "Il", "W dniu", "Dnia", "Den", "På",
# "Dne", a weekday abbreviation, or a date
_LEAD_WORDS = r"(?:On|Am|Le|El|Em|Op|Il|Il giorno|W dniu|Dnia|Den|På|Dne|Vào|在)\b"
LEAD_WORD = re.compile("^" + _LEAD_WORDS, re.IGNORECASE)
LEADS = re.compile(r"^(?:%s|\w{2,4}\.?,?\s+\d|\d)" % _LEAD_WORDS, re.IGNORECASE)
# Japanese Gmail "2020年3月3日(火) 10:00 Bob <bob@example.com>:" and Russian Gmail
# "вт, 3 мар. 2020 г. в 10:00, Bob <bob@example.com>:" carry no verb: date, sender, colon
ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+|mailto:", re.IGNORECASE)
DATE_OR_TIME = re.compile(r"\d{1,2}:\d{2}|\d{4}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}|\d{4}年")
ENDS_WITH_COLON = re.compile(r"[:：]\s*$")
# a sender as clients write it in an attribution: "Name <addr>", "(addr)", "from addr"
SENDER = re.compile(r"<[^<>\s]+@[^<>\s]+>|\([^()\s]+@[^()\s]+\)|\bfrom\s+\S+@\S+", re.IGNORECASE)
# "Message du : 12/12/2016 13:20" above a French webmail's "De :" (Orange, SFR, Free)
LEADING_FIELD = re.compile(r"^\w[\w'’ ]{0,24}\s?:\s*\S.{0,60}\d{1,2}:\d{2}")

# ---- device and app boilerplate as the last lines of the new text ------------------------------
_DEVICE = [
    # iOS/Android stock mail, Outlook mobile, Yahoo, AOL, Samsung, BlackBerry, Airmail, Spark,
    # ProtonMail, Windows Mail, web.de/GMX apps
    r"Sent from my\b.{0,60}", r"Sent from (?-i:[A-Z])[\w.-]*(?: (?-i:[A-Z0-9])[\w.-]*){0,3}", r"Sent from (?:Yahoo|AOL|Mail|Outlook|ProtonMail|Proton Mail|Gmail|"
    r"Samsung|BlackBerry|Spark|Xiaomi|Huawei|my mobile|mobile)\b.{0,60}",
    r"Sent (?:with|via|using) (?:Airmail|Spark|ProtonMail|Proton Mail|BlackBerry|Samsung|the Samsung|Blue Mail|BlueMail|Newton|Edison|Polymail)\b.{0,60}",
    r"Sent on the go\b.{0,40}", r"Sent from a mobile device\b.{0,40}",
    r"Get (?:Outlook|BlueMail|Newton) for (?:iOS|Android|Windows)\b.{0,40}",
    r"Von meinem .{1,40} gesendet\.?", r"Gesendet (?:von|mit|vom|über) .{1,60}",
    r"Envoyé (?:de|depuis|avec|à partir de) (?:mon|ma|l'application|Yahoo|Outlook|Mail)\b.{0,50}",
    r"Ottieni Outlook per .{1,30}", r"Baixar o Outlook para .{1,30}", r"Skaff deg Outlook for .{1,30}",
    r"Hämta Outlook för .{1,30}", r"Pobierz .{0,20}Outlook.{0,40}", r"(?:Получите|Получить|Скачайте|Скачать) Outlook для .{1,30}",
    r"(?:Отримайте|Отримати|Завантажити) Outlook для .{1,30}", r"获取适用于.{1,20}的 ?Outlook", r".{0,20}Outlook ?を入手",
    r"Obtenir Outlook pour .{1,30}", r"Télécharger Outlook pour .{1,30}",
    r"Enviado (?:desde|do|de|con|com|a partir do) (?:mi|meu|o meu|Yahoo|Outlook|Correo|Mail|iPhone|iPad)\b.{0,50}",
    r"Obtener Outlook para .{1,30}", r"Obter o Outlook para .{1,30}", r"Baixe o Outlook para .{1,30}",
    r"Inviato (?:da|dal|dalla|con) .{1,50}", r"Scarica Outlook per .{1,30}",
    r"(?:Verzonden|Verstuurd) (?:vanaf|van|met) .{1,50}", r"Outlook voor (?:iOS|Android) downloaden",
    r"Sendt fra (?:min|mit|Outlook|Yahoo|Mail)\b.{0,50}", r"Hent Outlook til .{1,30}",
    r"Få Outlook för .{1,30}", r"Skickat från (?:min|Outlook|Yahoo|Mail)\b.{0,50}",
    r"Hent Outlook for .{1,30}", r"Outlook für (?:iOS|Android) herunterladen", r"Lähetetty (?:iPhonesta|iPadista|Androidista|.{1,40}(?:laitteesta|puhelimesta|sovelluksesta))\b.{0,20}",
    r"Hanki Outlook .{1,30}", r"Wysłano z (?:mojego|aplikacji|iPhone|iPada|telefonu|Outlook|Yahoo)\b.{0,50}",
    r"Wysłane z (?:mojego|aplikacji|iPhone|telefonu|Outlook)\b.{0,50}", r"Pobierz Outlook dla .{1,30}",
    r"Отправлено (?:с|из) .{1,50}", r"Получите Outlook для .{1,30}",
    r"Надіслано (?:з|із) .{1,50}", r"Завантажте Outlook для .{1,30}",
    r"发自我的.{1,30}", r"从我的.{1,30}发送", r"發自我的.{1,30}", r"从.{1,20}发送",
    r"获取 ?Outlook for .{1,30}", r".{1,20}から送信", r"Outlook for .{1,20}を入手",
]
# one short line, never a sentence going on after a comma ("Sent from my desk, is much easier…")
DEVICE = re.compile(r"^(?!.*,\s)(?=.{0,100}$)(?:%s)\s*(?:<[^>]{0,200}>|\[[^\]]{0,200}\]|\([^)]{0,200}\))?\s*$" % "|".join(_DEVICE), re.IGNORECASE)

# ---- separators ----------------------------------------------------------------------------------
# RFC 3676 §4.3 signature delimiter "-- " (its space often lost on the way: "--" too)
SIGNATURE = re.compile(r"^--\s*$")
# a long rule of underscores: above Outlook's header block and mailing-list footers (Mailman)
RULE = re.compile(r"^\s*_{20,}\s*$")
# any line drawn with one character: only a separator when a header block follows it
DRAWN = re.compile(r"^\s*(?:[-_=*~]\s?){3,}\s*$")
