"""Word lists behind the caption rules (harapp.core.importers.captions): who can be a subject, what cannot.

Plain frozensets so a lookup costs one hash; plurals and common misspellings in COCO captions are listed
explicitly because stemming every token would cost more than the whole scan.
"""

from __future__ import annotations


def words(text: str) -> frozenset[str]:
    """A frozenset of the whitespace-separated words of `text`."""
    return frozenset(text.split())


PERSONS = words(
    """
    man men woman women person persons people peoples boy boys girl girls child children kid kids kiddo
    toddler toddlers baby babies infant infants adult adults teen teens teenager teenagers youngster youngsters
    youth youths guy guys gal gals lady ladies gentleman gentlemen dude dudes fellow fellows female females
    male males individual individuals human humans he she they we i you him them us someone somebody
    everyone everybody anyone anybody he's she's they're we're i'm you're
    crowd crowds couple couples family families group groups team teams audience spectator spectators fans
    player players skier skiers snowboarder snowboarders surfer surfers skateboarder skateboarders skater
    skaters boarder boarders kiteboarder kiteboarders kitesurfer windsurfer windsurfers paddler paddlers
    rider riders cyclist cyclists biker bikers bicyclist bicyclists motorcyclist motorcyclists hiker hikers
    jogger joggers runner runners athlete athletes sprinter racer racers golfer golfers swimmer swimmers
    batter batters catcher catchers pitcher pitchers umpire umpires ballplayer ballplayers goalie coach coaches
    referee referees
    tourist tourists pedestrian pedestrians traveler travelers traveller travellers passenger passengers
    commuter commuters shopper shoppers customer customers vendor vendors visitor visitors guest guests
    student students teacher teachers worker workers employee employees officer officers cop cops police
    policeman policemen policewoman soldier soldiers guard guards chef chefs cook cooks waiter waiters
    waitress waitresses bartender clerk farmer farmers cowboy cowboys fisherman fishermen lifeguard sailor
    sailors pilot pilots driver drivers conductor businessman businessmen businesswoman doctor doctors nurse
    nurses musician musicians performer performers dancer dancers actor actress singer president priest monk
    monks nun groom bride bridesmaid bridesmaids friend friends mother mothers father fathers mom moms dad dads
    son sons daughter daughters brother brothers sister sisters grandmother grandma grandfather grandpa
    grandparents parent parents wife husband girlfriend boyfriend uncle aunt cousin cousins twins
    others another guide guides instructor photographer dwellers residents locals
    onlookers bystanders servicemen servicewomen serviceman troops marines gir wman womn womman mna peple peopel
    childern
    """
)
"""Nouns and pronouns that make a verb's subject a person; a few frequent COCO misspellings included."""

DEPICTIONS = words(
    """
    statue statues sculpture sculptures figurine figurines mannequin mannequins manikin doll dolls toy toys
    painting paintings mural murals drawing drawings poster posters billboard billboards cutout cutouts
    cardboard sign signs signal symbol icon logo graffiti sticker stickers decal decals cartoon cartoons
    advertisement advertisements ad ads tv television screen video lego legos puppet puppets replica
    """
)
"""Things that show a person without being one: "a statue of a man standing" casts no vote."""

NON_PERSONS = DEPICTIONS | words(
    """
    dog dogs puppy puppies cat cats kitten kittens kitty horse horses pony ponies cow cows cattle calf calves
    bull bulls ox oxen sheep lamb lambs goat goats pig pigs bird birds pigeon pigeons seagull seagulls gull
    gulls duck ducks goose geese swan swans chicken chickens rooster parrot owl eagle hawk elephant elephants
    giraffe giraffes zebra zebras bear bears teddy animal animals deer monkey monkeys squirrel squirrels mouse
    rabbit bunny fox lion lions tiger tigers camel camels penguin penguins herd flock
    bus buses train trains car cars truck trucks van vans suv taxi cab motorcycle motorcycles motorbike
    motorbikes bike bikes bicycle bicycles scooter scooters moped boat boats ship ships ferry yacht canoe kayak
    plane planes airplane airplanes jet jets aircraft airliner helicopter trolley tram streetcar locomotive
    engine subway vehicle vehicles tractor carriage cart carts wagon trailer limo ambulance firetruck jeep
    skateboard skateboards surfboard surfboards snowboard snowboards skis ski kite kites
    table tables chair chairs bench benches couch couches sofa bed beds desk laptop laptops computer computers
    keyboard monitor phone phones cellphone remote remotes clock clocks tower towers building buildings house
    houses hydrant pole poles lamp lamps light lights robot scarecrow snowman vase vases bottle bottles cup cups
    mug mugs glass plate plates bowl bowls pizza pizzas sandwich sandwiches cake cakes donut donuts doughnut
    doughnuts food fruit fruits banana bananas apple apples orange oranges vegetable vegetables broccoli
    carrots hotdog umbrella umbrellas suitcase suitcases luggage bag bags backpack box boxes basket book books
    refrigerator fridge oven microwave toilet toilets sink bathtub tub water faucet tree trees plant plants
    flower flowers bucket cone cones meter post fence wall window door racket racquet bat ball balls frisbee
    board boards glove gloves cap caps hat hats shoe shoes boots items objects things stuff something photo
    tent bridge container jar pot pan tray dish dishes meal pie dessert drink drinks beer wine coffee tea it
    it's purse purses helmet helmets jacket coat shirt tie ties machine appliance appliances
    """
)
"""Animals, vehicles and objects: when one of these is a verb's subject, the caption casts no vote."""

DETERMINERS = words(
    """
    a an the this these those his her their its my our your each every some several many few
    multiple various numerous one's two three four five six seven eight nine ten twelve
    """
)

FILLERS = words(
    """
    is are was were be been being am who which that who's that's also all both just still currently
    casually happily quietly calmly together alone patiently there here now seemingly apparently simply
    slowly quickly briskly leisurely comfortably peacefully idly proudly barely mostly each
    not never isn't aren't wasn't weren't
    """
)
"""Words between a subject and its verb: auxiliaries, relative pronouns, adverbs (and negations)."""

NEGATIONS = words("not never isn't aren't wasn't weren't")

BLOCKERS = words("to can could will would should may might must cannot can't won't no nobody not never")
"""Right before the verb, these make it no statement about the photo ("a place to sit", "no one sitting")."""

LINKERS = words(
    """
    on in at with near by beside besides behind under over from into onto across along around inside
    outside next to front top atop between among amongst against toward towards through past for without
    beneath underneath below above alongside holding holds carrying carries wearing wears hugging petting
    feeding pushing pulling rides eats uses plays
    """
)
"""Words after which a noun is an object, not a subject: "a man with his dog walking" -> the man walks."""

COORDINATORS = words("and or & plus")

SUBORDINATORS = words("while whilst as when after before then until but because whereas where")
"""Right before a participle ("... while walking") they hand the verb to the main clause's subject."""

PART_OF = words("front top side middle edge back end corner bottom rest part")
"""'in front of X': 'of' is part of a preposition here, so X is an object, not what a group is made of."""

SEAT_PHRASES: tuple[str, ...] = (
    r"(?:on|in|at|atop)\s+(?:(?:a|an|the|his|her|their|some)\s+)?(?:\w+\s+)?(?:bench|benches|couch|sofa|chair"
    r"|chairs|table|tables|bed|horse|motorcycle|bike|bicycle|scooter|moped|ground|floor|stool|steps|stairs"
    r"|lap|desk|counter)",
    r"kneel\w*",
    r"crouch\w*",
    r"squat\w*",
    r"lying|laying|lie|lies|lay|lays",
)
"""Where posing people are usually not standing: such captions give posing no standing vote."""
