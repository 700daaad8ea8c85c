"""Writes data/train.jsonl and data/test.jsonl for the support-voice example, from hand-written parts.

    python examples/support-voice/make_data.py

Tidewell is a fictional product (smart water-leak protection for homes) invented for this example.
Every question, fact and phrase below was written for tunegate; the script only combines them: a
conversation is a customer question (written the way customers talk, with the generic words they
use, some typos and lowercase) and an answer in the Tidewell voice (the spec's voice rules) that
uses the Tidewell terms (the spec's glossary), built from a topic's facts in one of their written
phrasings. About one conversation in six has a follow-up turn.

Test conversations are drawn from the same topics with a separate random stream, and any test
conversation that is an exact or near duplicate (tunegate's own leakage check, same threshold as
the spec) of a training conversation is redrawn, so the test set measures generalisation to new
wording, not recall of training rows. The output is deterministic (fixed seed).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

SYSTEM = (
    "You are the customer support assistant for Tidewell, a smart water-leak protection system for homes."
)
OPENER = "Hey neighbor!"
SIGN_OFF = "Stay dry!"

# How customers name things (the glossary says how Tidewell names them).
WORDS = {
    "sensor": ["leak detector", "water sensor", "leak sensor", "sensor", "water detector", "probe"],
    "hub": ["base station", "hub", "gateway", "main unit", "bridge"],
    "valve": ["shutoff valve", "water valve", "auto shutoff", "main valve", "shut-off valve"],
    "alert": ["notification", "alarm", "alert", "warning", "push message"],
    "plan": ["premium", "pro plan", "subscription", "paid plan", "premium plan"],
    "mute": ["snooze", "mute", "silence", "turn off"],
    "group": ["family account", "home account", "account", "family group"],
    "app": ["app", "phone app", "tidewell app", "application"],
    "room": [
        "basement",
        "laundry room",
        "kitchen",
        "garage",
        "upstairs bathroom",
        "crawl space",
        "utility closet",
        "attic",
        "guest bathroom",
        "boiler room",
    ],
    "appliance": ["water heater", "washing machine", "dishwasher", "fridge", "sink", "toilet", "boiler"],
}

ACKS = [
    "Let's get that sorted.",
    "Good question.",
    "Thanks for flagging this.",
    "Here is what to do.",
    "That one is quick to fix.",
    "I can walk you through it.",
    "Glad you asked.",
    "Easy one.",
    "Let's take a look together.",
    "Thanks for reaching out.",
]
CLOSERS = [
    "Happy to help with anything else.",
    "Let me know how it goes.",
    "Ping us again if anything looks off.",
    "Reply here if you get stuck.",
    "",
    "",
    "",
]
FOLLOWUPS = [
    "thanks! one more thing.",
    "Got it, thanks. Another question:",
    "ok that worked. also,",
    "Perfect. Quick follow-up:",
    "thank you!! and",
    "Great. Separate question:",
]


@dataclass(frozen=True)
class Topic:
    key: str
    questions: list[str]
    facts: list[list[str]]  # each fact in two or three written phrasings; answers keep the order
    required: int = 2  # the first `required` facts are always in the answer


TOPICS = [
    Topic(
        "sensor_offline",
        [
            "My {sensor} in the {room} says offline. What do I do?",
            "why is the {sensor} in my {room} showing as disconnected",
            "The {app} shows my {room} {sensor} as offline since yesterday.",
            "{sensor} keeps going offline, is it broken?",
            "Help, the {sensor} by the {appliance} lost connection.",
        ],
        [
            [
                "A Drop Sensor shows offline when it cannot reach your Tidewell Hub.",
                "Offline means the Drop Sensor has lost its link to the Tidewell Hub.",
            ],
            [
                "First, press the button on top of the Drop Sensor once to wake it.",
                "Start by pressing the Drop Sensor button once so it checks in again.",
            ],
            [
                "If it stays offline, replace the two AAA batteries and wait two minutes.",
                "Still offline? Swap in two fresh AAA batteries and give it two minutes.",
            ],
            [
                "Sensors more than 30 meters from the Tidewell Hub may need a Tidewell Range Extender.",
                "A Drop Sensor far from the Tidewell Hub, past about 30 meters, may need a Range Extender.",
            ],
        ],
    ),
    Topic(
        "pair_sensor",
        [
            "How do I add a new {sensor}?",
            "just bought another {sensor} for the {room}, how do i connect it",
            "Can I pair an extra {sensor} to my {hub}?",
            "whats the process to set up a second {sensor}",
            "I want to put a {sensor} under my {appliance}. How do I set it up?",
        ],
        [
            [
                "Open the Tidewell app, tap Devices, then tap Add a Drop Sensor.",
                "In the Tidewell app, go to Devices and choose Add a Drop Sensor.",
            ],
            [
                "Pull the battery tab and hold the Drop Sensor button until the light blinks blue.",
                "Remove the battery tab, then hold the button until the Drop Sensor blinks blue.",
            ],
            [
                "Your Tidewell Hub finds it within a minute and asks you to name the room.",
                "The Tidewell Hub picks it up in under a minute, then you name the spot.",
            ],
            [
                "Place it flat on the floor, contacts down, close to where water would collect.",
                "Set it flat with the metal contacts touching the floor where water would pool.",
            ],
        ],
    ),
    Topic(
        "hub_wifi",
        [
            "How do I connect the {hub} to wifi?",
            "setting up the {hub} and it wont join my wifi",
            "The {hub} can't find my WiFi network.",
            "Does the {hub} work with 5GHz wifi?",
            "{hub} setup fails at the network step, any ideas?",
        ],
        [
            [
                "The Tidewell Hub joins 2.4 GHz Wi-Fi networks only.",
                "Your Tidewell Hub needs a 2.4 GHz Wi-Fi network; 5 GHz will not show up.",
            ],
            [
                "In the Tidewell app, open Hub Settings and tap Change Wi-Fi.",
                "Go to Hub Settings in the Tidewell app and choose Change Wi-Fi.",
            ],
            [
                "Keep your phone within a few meters of the Tidewell Hub during setup.",
                "Stay close to the Tidewell Hub with your phone while it joins.",
            ],
            [
                "If your router combines both bands, turn on its 2.4 GHz option for a moment.",
                "Routers that merge both bands often have a setting to expose 2.4 GHz on its own.",
            ],
        ],
    ),
    Topic(
        "hub_new_router",
        [
            "I got a new router, now the {hub} is offline.",
            "changed my wifi password and the {hub} stopped working",
            "Internet provider replaced our modem. How do I reconnect the {hub}?",
            "new wifi name at home, {hub} not connecting anymore",
        ],
        [
            [
                "Your Tidewell Hub still remembers the old Wi-Fi, so it needs the new details.",
                "The Tidewell Hub is still looking for your old Wi-Fi network.",
            ],
            [
                "Hold the Hub button for five seconds until the ring pulses white.",
                "Press and hold the button on the Tidewell Hub for five seconds until it pulses white.",
            ],
            [
                "Then open Hub Settings in the Tidewell app and tap Change Wi-Fi.",
                "Next, in the Tidewell app, go to Hub Settings and pick Change Wi-Fi.",
            ],
            [
                "Your Drop Sensors reconnect on their own once the Tidewell Hub is back online.",
                "Drop Sensors rejoin by themselves after the Tidewell Hub is online again.",
            ],
        ],
    ),
    Topic(
        "battery_replace",
        [
            "How do I change the battery in the {sensor}?",
            "{sensor} battery low warning, what batteries does it take",
            "what kind of battery goes in the {sensor}?",
            "Got a low battery {alert} about the {sensor} in the {room}.",
        ],
        [
            [
                "Each Drop Sensor takes two AAA batteries.",
                "A Drop Sensor runs on two standard AAA batteries.",
            ],
            [
                "Twist the top cover a quarter turn to the left and lift it off.",
                "Turn the cover a quarter turn counterclockwise to open the Drop Sensor.",
            ],
            [
                "Put the new batteries in, close the cover, and press the button once.",
                "Insert the fresh batteries, twist the cover shut, then press the button once.",
            ],
            [
                "The low battery Ripple alert clears within an hour.",
                "The battery warning in the Tidewell app clears within about an hour.",
            ],
        ],
    ),
    Topic(
        "battery_life",
        [
            "How long do the batteries last in the {sensor}?",
            "how often should i replace {sensor} batteries",
            "Do I need to change batteries every year?",
            "battery life on the {sensor}s?",
        ],
        [
            [
                "Drop Sensor batteries last about two years in normal use.",
                "Expect roughly two years from a pair of AAA batteries in a Drop Sensor.",
            ],
            [
                "Cold spots like a garage or crawl space can shorten that to about a year.",
                "In cold rooms, battery life can drop closer to one year.",
            ],
            [
                "The Tidewell app sends a Ripple alert when a battery falls below 20 percent.",
                "You get a Ripple alert once a battery drops under 20 percent, so there is no guessing.",
            ],
        ],
    ),
    Topic(
        "false_alarm",
        [
            "I got a leak {alert} but there is no water anywhere.",
            "false alarm from the {sensor} in the {room}??",
            "the {sensor} went off but the floor is dry",
            "Why did my {sensor} trigger when nothing leaked?",
            "Random {alert} at 3am, no water by the {appliance}. What happened?",
        ],
        [
            [
                "A Ripple alert with a dry floor usually means condensation touched the contacts.",
                "When the floor is dry, the usual cause is condensation on the Drop Sensor contacts.",
            ],
            [
                "Wipe the metal contacts under the Drop Sensor with a dry cloth.",
                "Dry the metal contacts on the bottom of the Drop Sensor with a cloth.",
            ],
            [
                "Check nearby pipes and the {appliance} for slow drips, since small leaks come and go.",
                "Look at the pipes near it too; slow drips can dry before you arrive.",
            ],
            [
                "In the Tidewell app, tap the Ripple alert to see exactly how long water was detected.",
                "Tap the Ripple alert in the Tidewell app to see the detection time and length.",
            ],
        ],
    ),
    Topic(
        "calm_mode",
        [
            "Can I {mute} the {alert}s for a few hours?",
            "we're mopping the {room} floor, how do i stop the {alert}s",
            "How do I {mute} the {sensor} temporarily?",
            "is there a way to pause {alert}s while a plumber works",
        ],
        [
            [
                "Yes, use Calm Mode to pause Ripple alerts for one to eight hours.",
                "Calm Mode pauses Ripple alerts for a set time, from one to eight hours.",
            ],
            [
                "Open the Tidewell app, tap the Drop Sensor, and choose Calm Mode.",
                "In the Tidewell app, pick the Drop Sensor and turn on Calm Mode.",
            ],
            [
                "Calm Mode never blocks the FlowGuard valve if a real leak gets worse.",
                "Even in Calm Mode, the FlowGuard valve still closes for a serious leak.",
            ],
            [
                "Ripple alerts come back on their own when the timer ends.",
                "When the timer runs out, Ripple alerts resume without you doing anything.",
            ],
        ],
    ),
    Topic(
        "valve_install",
        [
            "Can I install the {valve} myself?",
            "how hard is it to put in the {valve}",
            "Do I need a plumber for the {valve}?",
            "what tools do i need to fit the {valve} on my main line",
        ],
        [
            [
                "The FlowGuard valve clamps onto your main water line, so most homes need no cutting.",
                "Most FlowGuard valve installs clamp onto the main line with no pipe cutting.",
            ],
            [
                "It fits lever-handle ball valves from half inch to one inch.",
                "It works on lever-style ball valves between half an inch and one inch.",
            ],
            [
                "You only need the included bracket and a screwdriver, and it takes about 20 minutes.",
                "Plan on about 20 minutes with a screwdriver and the bracket in the box.",
            ],
            [
                "If your main has a round wheel handle, book a plumber to swap in a ball valve first.",
                "A round wheel handle means a plumber should fit a ball valve before the FlowGuard valve.",
            ],
        ],
    ),
    Topic(
        "valve_not_closing",
        [
            "The {valve} didn't close during a leak!",
            "my {valve} did not shut the water off when the {sensor} went off",
            "Why didn't the {valve} turn off the water?",
            "{sensor} detected water but {valve} stayed open",
        ],
        [
            [
                "The FlowGuard valve closes automatically only when Auto Shutoff is on for that Drop Sensor.",
                "Automatic closing needs Auto Shutoff switched on for the Drop Sensor that saw water.",
            ],
            [
                "Check it in the Tidewell app under Devices, then FlowGuard valve, then Auto Shutoff.",
                "In the Tidewell app, open the FlowGuard valve page and look at Auto Shutoff.",
            ],
            [
                "Also make sure the FlowGuard valve shows online and its power cable is seated.",
                "Confirm the FlowGuard valve is online and firmly plugged in.",
            ],
            [
                "Run a valve test from the same screen to confirm it moves freely.",
                "A quick valve test from that screen shows whether it turns freely.",
            ],
        ],
    ),
    Topic(
        "valve_test",
        [
            "Should I test the {valve} regularly?",
            "does the {valve} need maintenance",
            "How do I test that the {valve} works?",
            "my plumber said valves seize up if never used, true for the {valve}?",
        ],
        [
            [
                "Yes, the FlowGuard valve runs a monthly self-test to keep it from seizing.",
                "The FlowGuard valve exercises itself once a month so it never sticks.",
            ],
            [
                "The self-test closes and reopens the valve in under ten seconds, usually at 3 a.m.",
                "It closes and reopens in under ten seconds, by default at 3 a.m.",
            ],
            [
                "You can change the time or run a test now from FlowGuard valve settings in the Tidewell app.",
                "To pick another time or test right away, open FlowGuard valve settings in the Tidewell app.",
            ],
        ],
    ),
    Topic(
        "valve_reopen",
        [
            "The {valve} closed, how do I get water back?",
            "water is off after a leak {alert}, how do i turn it back on",
            "How do I reopen the {valve}?",
            "{valve} shut the water and the leak is fixed now",
        ],
        [
            [
                "First make sure the leak is fixed and the Drop Sensor is dry.",
                "Before anything else, fix the leak and dry the Drop Sensor.",
            ],
            [
                "Then tap Open Valve on the FlowGuard valve card in the Tidewell app.",
                "Next, tap Open Valve on the FlowGuard valve card in the Tidewell app.",
            ],
            [
                "No phone nearby? Press the FlowGuard valve button twice to open it by hand.",
                "You can also press the FlowGuard valve button twice to open it manually.",
            ],
        ],
    ),
    Topic(
        "household_invite",
        [
            "How do I add my wife to the {group}?",
            "can my roommate get the {alert}s too",
            "How do I share access with family?",
            "want my parents to see the {sensor}s at their house on my {app}",
            "add another person to our {group}?",
        ],
        [
            [
                "Invite them to your Household from the Tidewell app.",
                "Anyone you invite to your Household sees your devices and Ripple alerts.",
            ],
            [
                "Go to Settings, then Household, then Invite, and enter their email.",
                "Tap Settings, open Household, choose Invite and type their email.",
            ],
            [
                "They install the Tidewell app, accept the invite, and get Ripple alerts right away.",
                "Once they accept in the Tidewell app, Ripple alerts reach them too.",
            ],
            ["A Household can have up to eight members.", "Up to eight people can share one Household."],
        ],
    ),
    Topic(
        "household_remove",
        [
            "How do I remove someone from the {group}?",
            "my ex still gets {alert}s, how do i kick them out",
            "remove a member from our {group}",
            "Tenant moved out, how do I take them off the {app}?",
        ],
        [
            [
                "Only the Household owner can remove members.",
                "Removing members is something the Household owner does.",
            ],
            [
                "Open Settings, then Household, tap the person, and choose Remove.",
                "In Settings under Household, tap their name and pick Remove.",
            ],
            [
                "They stop getting Ripple alerts immediately and lose access to your devices.",
                "Their Ripple alerts stop right away, along with device access.",
            ],
        ],
    ),
    Topic(
        "plus_features",
        [
            "What do I get with {plan}?",
            "is the {plan} worth it",
            "What's included in the {plan}?",
            "difference between free and {plan}?",
        ],
        [
            [
                "Tidewell Plus adds phone-call Ripple alerts, so you hear about leaks even with notifications muted.",
                "With Tidewell Plus, urgent Ripple alerts can also call your phone.",
            ],
            [
                "It also gives daily water usage reports and a full year of leak history.",
                "You also get daily water usage reports and twelve months of history.",
            ],
            [
                "Tidewell Plus includes an insurance certificate many insurers accept for a discount.",
                "Many insurers give a discount for the certificate that comes with Tidewell Plus.",
            ],
            [
                "Everything else, including the FlowGuard valve and Calm Mode, works without it.",
                "Core protection, like the FlowGuard valve and Calm Mode, works without Tidewell Plus.",
            ],
        ],
    ),
    Topic(
        "plus_cancel",
        [
            "How do I cancel my {plan}?",
            "cancel {plan} please",
            "i want to stop paying for the {plan}",
            "How can I end the {plan} before it renews?",
        ],
        [
            [
                "You can cancel Tidewell Plus anytime in the Tidewell app.",
                "Cancelling Tidewell Plus takes a minute in the Tidewell app.",
            ],
            [
                "Go to Settings, then Tidewell Plus, then Manage, and tap Cancel.",
                "Open Settings, tap Tidewell Plus, choose Manage, then Cancel.",
            ],
            [
                "You keep Tidewell Plus until the end of the period you paid for.",
                "Your Tidewell Plus features last until the paid period ends.",
            ],
            [
                "Your Drop Sensors and FlowGuard valve keep protecting your home after that.",
                "Leak protection from your Drop Sensors and FlowGuard valve continues either way.",
            ],
        ],
    ),
    Topic(
        "plus_price",
        [
            "How much does {plan} cost?",
            "price of the {plan}?",
            "is there a yearly option for the {plan}",
            "Does the {plan} have a free trial?",
        ],
        [
            [
                "Tidewell Plus is 4 dollars a month or 40 dollars a year.",
                "Tidewell Plus costs 4 dollars monthly, or 40 dollars for a full year.",
            ],
            [
                "Every new Household gets a 30-day free trial.",
                "New Households can try Tidewell Plus free for 30 days.",
            ],
            [
                "One Tidewell Plus plan covers every device and member in your Household.",
                "A single Tidewell Plus plan covers your whole Household.",
            ],
        ],
    ),
    Topic(
        "freeze_alert",
        [
            "Can the {sensor} warn me about freezing pipes?",
            "does the {sensor} measure temperature",
            "I want to be warned if the {room} gets too cold.",
            "freeze warning setup?",
        ],
        [
            [
                "Yes, every Drop Sensor measures temperature as well as water.",
                "Each Drop Sensor also tracks temperature.",
            ],
            [
                "By default you get a Ripple alert below 5 degrees Celsius.",
                "A Ripple alert goes out when it drops under 5 degrees Celsius.",
            ],
            [
                "Change the threshold in the Tidewell app under the Drop Sensor's Temperature settings.",
                "Adjust it in the Tidewell app, in the Drop Sensor's Temperature settings.",
            ],
        ],
    ),
    Topic(
        "placement",
        [
            "Where should I put the {sensor}s?",
            "best spots for {sensor}s in a house?",
            "how many {sensor}s do i need",
            "Is the {room} a good place for a {sensor}?",
        ],
        [
            [
                "Put a Drop Sensor wherever water appears first: by the {appliance}, under sinks, and near the main line.",
                "Place Drop Sensors where leaks start, like next to the {appliance} and under sinks.",
            ],
            [
                "Lay it flat on the floor, not on a shelf, so the contacts touch any water.",
                "Keep it flat on the floor so water reaches its contacts.",
            ],
            [
                "Most homes start with three to five Drop Sensors.",
                "Three to five Drop Sensors cover most homes well.",
            ],
            [
                "Your Tidewell Hub supports up to 30 Drop Sensors.",
                "One Tidewell Hub handles up to 30 Drop Sensors.",
            ],
        ],
    ),
    Topic(
        "alerts_missing",
        [
            "I'm not getting {alert}s on my phone.",
            "no {alert}s came through when the {sensor} went off",
            "why dont i get push {alert}s",
            "My husband gets {alert}s but I don't.",
        ],
        [
            [
                "First check that notifications are allowed for the Tidewell app in your phone settings.",
                "Start with your phone settings and make sure the Tidewell app may send notifications.",
            ],
            [
                "Then, in the Tidewell app, open Settings and confirm Ripple alerts are on for you.",
                "Next, in the Tidewell app Settings, confirm your Ripple alerts are switched on.",
            ],
            [
                "Focus or Do Not Disturb modes can hide them, unless you allow Tidewell as an exception.",
                "Do Not Disturb can hold them back, so add Tidewell as an exception.",
            ],
            [
                "Send a test Ripple alert from Settings to check it arrives.",
                "Use Send Test Alert in Settings to confirm it reaches you.",
            ],
        ],
    ),
    Topic(
        "hub_lights",
        [
            "What do the lights on the {hub} mean?",
            "{hub} light is blinking orange",
            "the ring on the {hub} is red, is that bad",
            "What does a pulsing light on the {hub} mean?",
        ],
        [
            [
                "A steady blue ring means your Tidewell Hub is online and all is well.",
                "Solid blue on the Tidewell Hub means everything is connected.",
            ],
            [
                "Blinking orange means the Tidewell Hub lost Wi-Fi and is retrying.",
                "An orange blink means the Tidewell Hub is trying to rejoin Wi-Fi.",
            ],
            [
                "Red means a Drop Sensor detected water right now, so check the Tidewell app.",
                "A red ring means water is detected at this moment; open the Tidewell app.",
            ],
            [
                "Pulsing white means it is ready for setup.",
                "A white pulse means the Tidewell Hub is waiting to be set up.",
            ],
        ],
    ),
    Topic(
        "firmware",
        [
            "How do I update the {hub} firmware?",
            "is my {hub} up to date",
            "Do the {sensor}s get software updates?",
            "update stuck on the {hub}",
        ],
        [
            [
                "Your Tidewell Hub updates itself overnight when a new version is out.",
                "Updates install on the Tidewell Hub automatically, overnight.",
            ],
            [
                "Drop Sensors update through the Tidewell Hub, so there is nothing to do.",
                "The Tidewell Hub also updates your Drop Sensors for you.",
            ],
            [
                "To check, open Hub Settings in the Tidewell app and look at the version line.",
                "The current version is in Hub Settings in the Tidewell app.",
            ],
            [
                "If an update seems stuck for an hour, unplug the Tidewell Hub for ten seconds.",
                "An update stuck over an hour clears after unplugging the Tidewell Hub for ten seconds.",
            ],
        ],
    ),
    Topic(
        "away_mode",
        [
            "We're going on vacation. Any settings I should change?",
            "is there a vacation mode",
            "going away for two weeks, how do i protect the house",
            "Can the {valve} close automatically while we travel?",
        ],
        [
            [
                "Turn on Away Mode in the Tidewell app before you leave.",
                "Switch on Away Mode in the Tidewell app when you head out.",
            ],
            [
                "Away Mode closes the FlowGuard valve at the first drop instead of waiting.",
                "In Away Mode the FlowGuard valve closes as soon as any water is detected.",
            ],
            [
                "Add a neighbor to your Household so someone nearby gets Ripple alerts too.",
                "It helps to invite a neighbor to your Household for Ripple alerts while you are away.",
            ],
        ],
    ),
    Topic(
        "usage_reports",
        [
            "Can I see how much water we use?",
            "does the {app} show water usage",
            "where are the daily water reports",
            "Can I track water use by day?",
        ],
        [
            [
                "Daily water usage reports come with Tidewell Plus and need a FlowGuard valve.",
                "With Tidewell Plus and a FlowGuard valve, you get daily water usage reports.",
            ],
            [
                "Find them on the Usage tab of the Tidewell app.",
                "They live on the Usage tab in the Tidewell app.",
            ],
            [
                "The report flags unusual use, like a toilet that keeps running.",
                "Unusual patterns, like a running toilet, are highlighted.",
            ],
        ],
    ),
    Topic(
        "reset_hub",
        [
            "How do I factory reset the {hub}?",
            "need to reset my {hub} completely",
            "selling my house, how do i wipe the {hub}",
            "Reset {hub} to start over?",
        ],
        [
            [
                "Hold the Tidewell Hub button for 20 seconds until the ring flashes red three times.",
                "Press and hold the Tidewell Hub button for 20 seconds, until three red flashes.",
            ],
            [
                "That erases Wi-Fi details and unpairs every Drop Sensor.",
                "A reset removes the Wi-Fi details and all paired Drop Sensors.",
            ],
            [
                "If you are moving, also remove the Tidewell Hub from your Household in the Tidewell app.",
                "When moving out, remove the Tidewell Hub from your Household in the Tidewell app too.",
            ],
        ],
    ),
    Topic(
        "range",
        [
            "The {sensor} in the {room} is too far from the {hub}.",
            "weak signal for the {sensor} in the {room}",
            "How far can a {sensor} be from the {hub}?",
            "signal bars are low on one {sensor}",
        ],
        [
            [
                "A Drop Sensor reaches about 30 meters indoors, less through concrete or metal.",
                "Drop Sensors reach around 30 meters indoors, shorter through concrete.",
            ],
            [
                "Try moving the Tidewell Hub to a more central spot, up off the floor.",
                "Move the Tidewell Hub somewhere central and raised if you can.",
            ],
            [
                "For far corners, add a Tidewell Range Extender between them.",
                "A Tidewell Range Extender bridges the gap to distant Drop Sensors.",
            ],
        ],
    ),
    Topic(
        "second_home",
        [
            "Can I use one {app} for two houses?",
            "we have a cabin too, can i add it to my {group}",
            "How do I set up a second home?",
            "managing {sensor}s at my rental property and my home",
        ],
        [
            [
                "Yes, each home gets its own Household in the Tidewell app.",
                "Every home is its own Household, all in one Tidewell app.",
            ],
            [
                "Tap your home name at the top of the Tidewell app and choose Add Household.",
                "Tap the home name at the top of the Tidewell app, then Add Household.",
            ],
            [
                "Each Household needs its own Tidewell Hub.",
                "You will need a separate Tidewell Hub for each Household.",
            ],
            [
                "Switch between Households from the same menu.",
                "You switch between Households from that same menu.",
            ],
        ],
    ),
    Topic(
        "export",
        [
            "Can I download my leak history?",
            "export {alert} history for my insurance claim",
            "how do i get a report of past leaks",
            "Need a record of when the {sensor} detected water.",
        ],
        [
            [
                "Yes, open History in the Tidewell app and tap Export.",
                "Go to History in the Tidewell app and choose Export.",
            ],
            [
                "You get a spreadsheet of every Ripple alert with times and Drop Sensor names.",
                "The export lists every Ripple alert with its time and Drop Sensor.",
            ],
            [
                "Free accounts keep 30 days of history, and Tidewell Plus keeps a full year.",
                "History covers 30 days, or a full year with Tidewell Plus.",
            ],
        ],
    ),
    Topic(
        "warranty",
        [
            "What's the warranty on the {sensor}?",
            "my {hub} died after a year, is it covered",
            "warranty for the {valve}?",
            "How do I get a replacement for a broken {sensor}?",
        ],
        [
            [
                "Every Tidewell device has a two-year warranty.",
                "All Tidewell devices come with a two-year warranty.",
            ],
            [
                "Start a claim in the Tidewell app under Settings, then Support, then Warranty.",
                "Open a claim from Settings, then Support, then Warranty in the Tidewell app.",
            ],
            [
                "We ship the replacement first, and you send the old one back in the same box.",
                "The replacement ships first; return the old device in its box.",
            ],
        ],
    ),
    Topic(
        "insurance",
        [
            "Can I get an insurance discount with Tidewell?",
            "my insurer wants proof of a leak system",
            "where is the insurance certificate",
            "Does my home insurance give a discount for the {valve}?",
        ],
        [
            [
                "Many insurers offer a discount for homes with a FlowGuard valve.",
                "A FlowGuard valve often qualifies for a home insurance discount.",
            ],
            [
                "Tidewell Plus includes a certificate you can send them.",
                "The certificate comes with Tidewell Plus.",
            ],
            [
                "Download it in the Tidewell app under Settings, then Tidewell Plus, then Certificate.",
                "Find it in Settings, then Tidewell Plus, then Certificate, in the Tidewell app.",
            ],
        ],
    ),
    Topic(
        "phone_calls",
        [
            "Can Tidewell call me when there's a leak?",
            "i sleep through {alert}s, can it phone me",
            "Do you have SMS or phone {alert}s?",
            "want a phone call {alert} not just push",
        ],
        [
            [
                "Yes, Tidewell Plus adds phone-call Ripple alerts for urgent leaks.",
                "Phone-call Ripple alerts are part of Tidewell Plus.",
            ],
            [
                "Turn them on in Settings, then Ripple alerts, then Call Me.",
                "Switch on Call Me under Settings, then Ripple alerts.",
            ],
            [
                "Up to three Household members can get calls, one after another.",
                "Calls can go to up to three Household members in turn.",
            ],
        ],
    ),
    Topic(
        "delete_account",
        [
            "How do I delete my {group}?",
            "please delete all my data",
            "close my {group} and remove everything",
            "how to delete my tidewell profile",
        ],
        [
            [
                "You can delete your account in the Tidewell app under Settings, then Privacy, then Delete.",
                "Go to Settings, then Privacy, then Delete in the Tidewell app.",
            ],
            [
                "If you own the Household, transfer it or remove other members first.",
                "Household owners need to transfer ownership or remove members first.",
            ],
            [
                "We erase your data within 30 days and email you when it is done.",
                "Your data is erased within 30 days, and we confirm by email.",
            ],
        ],
    ),
]


def fill(text: str, rng: random.Random) -> str:
    for slot, options in WORDS.items():
        while "{" + slot + "}" in text:
            text = text.replace("{" + slot + "}", rng.choice(options), 1)
    return text


def noisy(question: str, rng: random.Random) -> str:
    """Customers type fast: sometimes lowercase, no final punctuation, or a swapped pair of letters."""
    if rng.random() < 0.15:
        question = question.lower()
    if rng.random() < 0.15:
        question = question.rstrip("?.!")
    if rng.random() < 0.12:
        words = question.split()
        i = rng.randrange(len(words))
        w = words[i]
        if len(w) > 4 and w.isalpha():
            j = rng.randrange(1, len(w) - 2)
            words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
        question = " ".join(words)
    return question[0].upper() + question[1:] if rng.random() < 0.8 else question


def answer(topic: Topic, rng: random.Random, question: str) -> str:
    count = rng.randint(topic.required, len(topic.facts))
    chosen = list(range(topic.required)) + sorted(
        rng.sample(range(topic.required, len(topic.facts)), count - topic.required)
    )
    appliance = rng.choice(WORDS["appliance"])
    facts = [rng.choice(topic.facts[i]).replace("{appliance}", appliance) for i in chosen]
    closer = rng.choice(CLOSERS)
    parts = [OPENER, rng.choice(ACKS), *facts, closer, SIGN_OFF]
    return " ".join(p for p in parts if p)


def conversation(rng: random.Random, index: int, prefix: str) -> dict:
    topic = rng.choice(TOPICS)
    question = noisy(fill(rng.choice(topic.questions), rng), rng)
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": question},
        {"role": "assistant", "content": answer(topic, rng, question)},
    ]
    if rng.random() < 0.17:
        second = rng.choice([t for t in TOPICS if t.key != topic.key])
        follow = f"{rng.choice(FOLLOWUPS)} {noisy(fill(rng.choice(second.questions), rng), rng)}"
        messages += [
            {"role": "user", "content": follow},
            {"role": "assistant", "content": answer(second, rng, follow)},
        ]
        topic = second
    return {"id": f"{prefix}-{index:04d}", "messages": messages, "metadata": {"topic": topic.key}}


def main(out: Path, n_train: int = 340, n_test: int = 72, seed: int = 20261128) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    from tunegate.data.chat import ChatExample, as_text_example
    from tunegate.data.duplicates import normalize_text
    from tunegate.data.near_duplicates import near_leakage

    train_rng, test_rng = random.Random(seed), random.Random(seed + 1)
    train, seen = [], set()
    while len(train) < n_train:
        row = conversation(train_rng, len(train) + 1, "train")
        key = normalize_text(json.dumps(row["messages"]))
        if key not in seen:
            seen.add(key)
            train.append(row)

    def as_example(row: dict, source: str) -> object:
        return as_text_example(ChatExample(tuple(row["messages"]), row["id"], source, 0))

    train_examples = [as_example(r, "train") for r in train]
    test: list[dict] = []
    while len(test) < n_test:
        row = conversation(test_rng, len(test) + 1, "test")
        leaks = near_leakage(train_examples, [as_example(row, "test")], 0.85)
        if not leaks and normalize_text(json.dumps(row["messages"])) not in seen:
            test.append(row)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", train), ("test", test)):
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"wrote {len(train)} train and {len(test)} test conversations to {out}")


if __name__ == "__main__":
    main(Path(__file__).resolve().parent / "data")
