"""Every alarm the locker raises, declared once: how urgent it is, whether a person must answer
for it, what it is called in the operators' two languages; and an operator's acknowledgement.

Severity follows the Prometheus rules (deploy/prometheus/locker-alerts.yml, a test holds the two
together): `page` (someone goes now: customers cannot collect, food or doors at risk) or
`ticket` (the next working day). An alarm stays open while its condition lasts; a security alarm
(a forced door, codes being guessed, a forged command) stays open after that until an operator
acknowledges it with a note, so that it is seen even if the door closed two seconds later. An
acknowledgement is an event for central (`alarm.acknowledged`), in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from locker.domain.errors import Refused
from locker.domain.store import Tx

Severity = Literal["page", "ticket"]
NOTE_CHARS = (3, 200)


@dataclass(frozen=True)
class AlarmKind:
    kind: str
    severity: Severity
    security: bool  # acknowledged by an operator, with a note, before it closes
    en: str
    fr: str


def _kinds(*kinds: AlarmKind) -> dict[str, AlarmKind]:
    return {k.kind: k for k in kinds}


ALARMS: dict[str, AlarmKind] = _kinds(
    AlarmKind("door_forced", "page", True, "door opened without authorisation",
              "porte ouverte sans autorisation"),
    AlarmKind("code_guessing", "ticket", True, "pickup codes being guessed",
              "codes de retrait essayés au hasard"),
    AlarmKind("login_guessing", "ticket", True, "staff codes being guessed",
              "codes du personnel essayés au hasard"),
    AlarmKind("command_forged", "page", True, "a command central did not sign",
              "une commande non signée par le central"),
    AlarmKind("remote_open_burst", "page", True, "many remote openings at once",
              "beaucoup d'ouvertures à distance d'un coup"),
    AlarmKind("zone_excursion", "page", False, "a zone out of its temperature limits",
              "une zone hors de ses limites de température"),
    AlarmKind("not_cooling", "page", False, "a compressor that does not cool",
              "un compresseur qui ne refroidit pas"),
    AlarmKind("probe_fault", "page", False, "a temperature probe that cannot be read",
              "une sonde de température illisible"),
    AlarmKind("controller_alarm", "page", False, "the refrigeration controller reports a fault",
              "le régulateur de froid signale un défaut"),
    AlarmKind("board_offline", "page", False, "a lock board that does not answer",
              "une carte de serrures qui ne répond pas"),
    AlarmKind("door_jammed", "ticket", False, "a door unlocked that did not open",
              "une porte déverrouillée qui ne s'est pas ouverte"),
    AlarmKind("unlock_failed", "ticket", False, "a lock that did not unlock",
              "une serrure qui ne s'est pas déverrouillée"),
    AlarmKind("door_left_open", "ticket", False, "a door left open",
              "une porte restée ouverte"),
    AlarmKind("reallocation_failed", "ticket", False, "bags that found no other compartment",
              "des sacs sans autre casier"),
    AlarmKind("disk_low", "ticket", False, "the disk is nearly full",
              "le disque est presque plein"),
    AlarmKind("disk_full", "page", False, "the disk is full: pickups wait",
              "le disque est plein : les retraits attendent"),
    AlarmKind("store_unwritable", "page", False, "the store cannot write: pickups wait",
              "le stockage ne peut pas écrire : les retraits attendent"),
    AlarmKind("store_rolled_back", "ticket", False, "the store was restored from a backup",
              "le stockage a été restauré d'une sauvegarde"),
    AlarmKind("central_unreachable", "ticket", False, "central does not answer",
              "le central ne répond pas"),
    AlarmKind("central_protocol", "ticket", False, "central answers what it should not",
              "le central répond de travers"),
    AlarmKind("clock_unsynchronised", "ticket", False, "the clock is not synchronised",
              "l'horloge n'est pas synchronisée"),
    AlarmKind("goods_unexpected", "ticket", False, "goods in a compartment nobody expects",
              "des articles dans un casier où personne n'en attend"),
    AlarmKind("item_sensor_suspect", "ticket", False, "an item sensor that reads empty on a bag",
              "un capteur d'articles qui lit vide sur un sac"),
    AlarmKind("return_waiting", "ticket", False, "a customer's return waiting long for a courier",
              "un retour de client qui attend un livreur depuis longtemps"),
)
SECURITY = tuple(k for k, a in ALARMS.items() if a.security)


def declared(kind: str) -> AlarmKind:
    """The declaration of an alarm kind; an undeclared kind is a bug (the tests read every
    raise_alarm in the code against this table)."""
    found = ALARMS.get(kind)
    if found is None:
        raise KeyError(f"alarm kind {kind!r} is not declared in locker/domain/alarms.py")
    return found


# an alarm is open while its condition lasts, or, for a security alarm, until acknowledged
OPEN_SQL = ("(cleared_at IS NULL OR (acked_at IS NULL AND kind IN ("
            + ", ".join(f"'{k}'" for k in SECURITY) + ")))")


def open_alarms(read: Tx) -> list[dict[str, Any]]:
    """Every open alarm, newest first, with its declaration and where it stands."""
    found = []
    for row in read.all(f"SELECT * FROM alarms WHERE {OPEN_SQL} ORDER BY raised_at DESC, id DESC"):
        kind = ALARMS.get(row["kind"])
        found.append({
            "id": row["id"], "kind": row["kind"], "subject": row["subject"],
            "message": row["message"], "raised_at": row["raised_at"],
            "cleared_at": row["cleared_at"], "acked_at": row["acked_at"],
            "acked_by": row["acked_by"], "ack_note": row["ack_note"],
            "severity": kind.severity if kind else "ticket",
            "security": bool(kind and kind.security),
            "state": "active" if row["cleared_at"] is None else "awaiting_ack",
        })
    return found


def acknowledge(tx: Tx, alarm_id: int, note: str, actor: str) -> dict[str, Any]:
    """An operator has seen the alarm and says what was done; a security alarm whose condition
    has cleared closes with it. Refused: no such alarm, acknowledged already, or no note."""
    note = note.strip()
    low, high = NOTE_CHARS
    if not low <= len(note) <= high:
        raise Refused("note", f"say what was seen or done ({low}-{high} characters)")
    row = tx.one("SELECT * FROM alarms WHERE id = ?", (alarm_id,))
    if row is None:
        raise Refused("no_alarm", f"no alarm {alarm_id}")
    if row["acked_at"] is not None:
        raise Refused("acknowledged", f"alarm {alarm_id} was acknowledged already by"
                      f" {row['acked_by']}")
    tx.execute("UPDATE alarms SET acked_at = ?, acked_by = ?, ack_note = ? WHERE id = ?",
               (tx.now, actor, note, alarm_id))
    closed = row["cleared_at"] is not None
    tx.emit("alarm.acknowledged", "alarm", subject=row["subject"], alarm=alarm_id,
            alarm_kind=row["kind"], note=note, actor=actor, closed=closed)
    return {"alarm": alarm_id, "acknowledged": True, "closed": closed}
