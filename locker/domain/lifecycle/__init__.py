"""The one owner of orders, compartments, doors and authorisations.

Nothing outside this package writes the tables `orders`, `order_bags`, `order_compartments`,
`compartments` and `authorisations` (tests/locker/test_lifecycle.py checks it). Every change of
state is a step of the table in `table.py`; `order.settle()` is the reconcile pass that brings an
order back from any fault. Use cases (pickup, courier, the feed, central's commands, the door
monitor) call these functions inside their own transaction, then commit, then act.

- table.py: the states, the events, the transition table, its diagram
- records.py: typed views of the rows
- order.py, compartment.py, door.py: the steps for each
"""
