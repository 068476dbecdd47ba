"""Splitting components that would hold two values of one unique id: older evidence wins."""

from touchline.transforms.identity.conflicts import split_component


def test_chain_between_two_customers_is_cut_at_the_youngest_link():
    members = {"cx": "customer_id", "mail": "email", "ck": "cookie_id", "cy": "customer_id", "dy": "device_id"}
    links = [("cx", "mail", 1), ("ck", "mail", 2), ("ck", "cy", 3), ("cy", "dy", 0)]
    labels, refused = split_component(members, links)
    assert refused == 1
    assert labels["cx"] == labels["mail"] == labels["ck"] == "cx"
    assert labels["cy"] == labels["dy"] == "cy"


def test_one_value_of_each_unique_kind_is_one_person():
    members = {"c": "customer_id", "e": "employee_id", "p": "partner_id", "d": "device_id", "c2": "customer_id"}
    links = [("c", "d", 1), ("e", "d", 2), ("p", "d", 3), ("c2", "d", 4)]
    labels, refused = split_component(members, links)
    assert len({labels[x] for x in "cepd"}) == 1 and labels["c2"] == "c2" and refused == 1


def test_label_is_the_strongest_member_and_independent_of_link_order():
    members = {"zz": "customer_id", "aa": "cookie_id", "mm": "email", "c2": "customer_id"}
    links = [("zz", "mm", 5), ("aa", "mm", 6), ("aa", "c2", 7)]
    first, _ = split_component(members, links)
    second, _ = split_component(members, list(reversed(links)))
    assert first == second and first["aa"] == "zz"
